"""A ChatML chat template with Hermes-style tool calls, for models whose own template has none.

verl renders prompts with the tokenizer's chat template and reads tool calls with the parser of
`actor_rollout_ref.rollout.multi_turn.format`. Models trained for tools (Qwen2.5/3, ...) bring a
template that renders `tools`, assistant `tool_calls` and `tool` messages; SmolLM2-Instruct's
template renders none of them. `CHATML_TOOLS_TEMPLATE` does, in the format verl's "hermes"
parser reads: the tool schemas as JSON lines inside `<tools></tools>` in the system message,
each call as `<tool_call>{"name": ..., "arguments": {...}}</tool_call>`, tool outputs as
`<tool_response>` blocks in a user turn. Pass it as `actor_rollout_ref.model.custom_chat_template`
(verl sets it on every tokenizer it builds); `hydra_override()` gives that override.
"""

from __future__ import annotations

# Newlines right after a block tag are written as {{ NL }}: transformers renders templates with
# trim_blocks, which drops them.
CHATML_TOOLS_TEMPLATE = (
    "{% set NL = '\\n' %}{% if tools %}<|im_start|>system\n"
    "{% if messages[0].role == 'system' %}{{ messages[0].content }}\n\n{% endif %}"
    "# Tools\n\nYou may call one or more functions. Their signatures are inside <tools></tools>:"
    "\n<tools>{% for tool in tools %}{{ NL }}{{ tool | tojson }}{% endfor %}{{ NL }}</tools>\n\n"
    "For each call, write a JSON object with the function name and arguments inside "
    '<tool_call></tool_call> tags:\n<tool_call>\n{"name": <function-name>, "arguments": '
    "<args-json-object>}\n</tool_call><|im_end|>\n"
    "{% elif messages[0].role == 'system' %}<|im_start|>system\n"
    "{{ messages[0].content }}<|im_end|>\n{% endif %}"
    "{% for m in messages %}"
    "{% if m.role == 'system' and loop.first %}"
    "{% elif m.role == 'tool' %}"
    "{% if loop.first or messages[loop.index0 - 1].role != 'tool' %}<|im_start|>user{% endif %}"
    "{{ NL }}<tool_response>\n{{ m.content }}\n</tool_response>"
    "{% if loop.last or messages[loop.index0 + 1].role != 'tool' %}<|im_end|>\n{% endif %}"
    "{% elif m.role == 'assistant' %}<|im_start|>assistant\n"
    "{% if m.content %}{{ m.content }}{% endif %}"
    "{% for c in m.tool_calls or [] %}{% if m.content or not loop.first %}{{ NL }}{% endif %}"
    '<tool_call>\n{"name": "{{ c.function.name }}", "arguments": '
    "{{ c.function.arguments | tojson }}}\n</tool_call>{% endfor %}<|im_end|>\n"
    "{% else %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n"
    "{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def hydra_override(template: str = CHATML_TOOLS_TEMPLATE) -> str:
    """`actor_rollout_ref.model.custom_chat_template=...` as one command-line argument."""
    # hydra's quoted strings: quotes are escaped; a backslash is literal unless a quote follows
    # it, and the template has none there.
    if "\\'" in template:
        raise ValueError("the template has a backslash before a quote")
    escaped = template.replace("'", "\\'")
    return f"actor_rollout_ref.model.custom_chat_template='{escaped}'"
