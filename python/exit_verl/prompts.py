"""Chat prompts for base tasks and for ExIt's self-improve / self-diverge steps.

The structure follows the paper's App. B (in our own words): an instruction, a "Request"
section (the task, or in a multi-turn history the latest request), a "Current response"
section (the previous iterate, shown whole) and, for self-divergence, a required format —
a brief summary of the current approach, a meaningfully different approach, then the new
response. Families are registered by name: "math" and "generic" share the templates (math
adds a system prompt asking for a boxed answer); "mle" adds an "Error trace" section.

Nothing here shortens an attempt: `render_messages` is pure, so a caller with a token
budget (the verl plugin) can shorten the attempt its own way and render again.
Placeholders are `{task}`, `{attempt}` and, optionally, `{error}`; they are filled in one
pass, so braces inside the task or the attempt are left alone.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from exit_verl.history import Turn

Message = dict[str, str]
TaskPrompt = str | Sequence[Mapping[str, str]]
ITERATION_KINDS = ("improve", "diverge")
_PLACEHOLDER = re.compile(r"\{(task|attempt|error)\}")


@dataclass(frozen=True)
class Templates:
    """A prompt family: system prompt (or None), improve and diverge templates."""

    system: str | None
    improve: str
    diverge: str

    def validate(self) -> Templates:
        for name in ITERATION_KINDS:
            text = getattr(self, name)
            if not isinstance(text, str) or "{task}" not in text or "{attempt}" not in text:
                raise ValueError(f"the {name} template needs {{task}} and {{attempt}} placeholders")
        return self


_IMPROVE = (
    "Improve the current response to the request below. Check it step by step, correct any "
    "mistakes and fill any gaps, then write the complete improved response.\n\n"
    "## Request\n{task}\n\n"
    "## Current response\n{attempt}"
)
_DIVERGE = (
    "Write another response to the request below, one whose approach differs significantly "
    "from the current response's approach.\n\n"
    "## Request\n{task}\n\n"
    "## Current response\n{attempt}\n\n"
    "## Required format\n"
    "1. Summary of the current approach: a few sentences.\n"
    "2. A different approach: describe a meaningfully different way to handle the request.\n"
    "3. New response: the complete response, carried out with that different approach."
)
_ERROR = "\n\n## Error trace\n{error}"

TEMPLATES: dict[str, Templates] = {}


def register_templates(name: str, templates: Templates) -> Templates:
    TEMPLATES[name] = templates.validate()
    return templates


register_templates("generic", Templates(system=None, improve=_IMPROVE, diverge=_DIVERGE))
register_templates(
    "math",
    Templates(
        system=(
            "You are a careful problem solver. Reason step by step and put the final answer "
            "in \\boxed{}."
        ),
        improve=_IMPROVE,
        diverge=_DIVERGE,
    ),
)
register_templates(
    "mle",
    Templates(
        system=(
            "You are a machine learning engineer. Write complete, runnable code that solves "
            "the task and reports its validation score."
        ),
        improve=_IMPROVE.replace("{attempt}", "{attempt}" + _ERROR),
        diverge=_DIVERGE.replace("{attempt}\n\n", "{attempt}" + _ERROR + "\n\n"),
    ),
)


def templates_for(
    domain: str,
    improve: str | None = None,
    diverge: str | None = None,
    system: str | None = None,
) -> Templates:
    """The family registered as `domain`, with any of its three texts overridden."""
    if domain not in TEMPLATES:
        raise ValueError(f"unknown prompt domain {domain!r}; known: {sorted(TEMPLATES)}")
    base = TEMPLATES[domain]
    overrides = {"improve": improve, "diverge": diverge, "system": system}
    return replace(base, **{k: v for k, v in overrides.items() if v is not None}).validate()


def task_text(prompt: TaskPrompt) -> str:
    """The task statement: a string, or the last user message of a chat prompt."""
    if isinstance(prompt, str):
        return prompt
    users = [m["content"] for m in prompt if m.get("role") == "user"]
    if not users:
        raise ValueError("a chat prompt needs at least one user message")
    return users[-1]


def base_messages(prompt: TaskPrompt, templates: Templates) -> list[Message]:
    """A base task as chat messages (a chat prompt is kept as given)."""
    if not isinstance(prompt, str):
        return [dict(m) for m in prompt]
    messages: list[Message] = []
    if templates.system:
        messages.append({"role": "system", "content": templates.system})
    messages.append({"role": "user", "content": prompt})
    return messages


def fill(template: str, task: str, attempt: str, error: str | None = None) -> str:
    """The template with its placeholders replaced in one pass."""
    values = {"task": task, "attempt": attempt, "error": error or "(none)"}
    return _PLACEHOLDER.sub(lambda m: values[m.group(1)], template)


def render_messages(
    task_prompt: TaskPrompt,
    attempt: str,
    kind: str,
    templates: Templates,
    *,
    context: Sequence[Turn] = (),
    request: str | None = None,
    error: str | None = None,
) -> list[Message]:
    """An improve / diverge step as chat messages, showing the whole `attempt`.

    Multi-turn histories pass `context`, the turns before the attempt's (replayed as
    user / assistant messages after the task), and `request`, the observation the attempt
    answered (None: the task itself). `error` fills the `{error}` slot of families that
    have one.
    """
    if kind not in ITERATION_KINDS:
        raise ValueError(f"kind must be 'improve' or 'diverge', got {kind!r}")
    if not isinstance(attempt, str):
        raise ValueError("attempt must be a string")
    if context and request is None:
        raise ValueError("a multi-turn attempt needs the request (observation) it answered")
    template = templates.improve if kind == "improve" else templates.diverge
    system = templates.system
    if not isinstance(task_prompt, str):
        system = next((m["content"] for m in task_prompt if m.get("role") == "system"), system)
    messages: list[Message] = []
    if system:
        messages.append({"role": "system", "content": system})
    task = task_text(task_prompt)
    if context:
        messages.append({"role": "user", "content": task})
        for i, turn in enumerate(context):
            messages.append({"role": "assistant", "content": turn.response})
            if i + 1 < len(context):
                messages.append({"role": "user", "content": context[i + 1].observation or ""})
    shown = task if request is None else request
    messages.append({"role": "user", "content": fill(template, shown, attempt, error)})
    return messages
