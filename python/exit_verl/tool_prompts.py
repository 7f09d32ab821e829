"""Improve / diverge prompts for histories with structured tool-use turns (`Turn.messages`).

A multi-turn tool-use history is rendered as the conversation the policy had: the task's own
chat prompt (system message and first request), then for every turn before the latest one its
assistant messages with their tool calls and the `tool` messages with the outputs, each later
turn opened by its request as a user message. The latest turn's request is followed by the
earlier attempt at it, again as assistant / tool messages (its calls and their outputs), and
then by one user message: `RESTORED_NOTE` and the family's improve or diverge template
(paper App. B), whose "Request" is that turn's request and whose "Current response" is the
attempt as text (`Turn.text`: its calls, one per line, and its final answer).

The environment the policy continues in is the state after the earlier turns only (the
attempt's calls are undone), which is what the note says; the verl agent loop
(`exit_verl.verl.tool_agent_loop`) restores it by re-running the earlier turns' calls.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from exit_verl.prompts import ITERATION_KINDS, Templates, fill, task_text

RESTORED_NOTE = (
    "The environment has been restored to its state before the current response below: "
    "none of its tool calls took effect."
)


def is_structured(turns: Sequence[Any]) -> bool:
    return any(getattr(t, "messages", ()) for t in turns)


def turn_messages(turn: Any) -> list[dict[str, Any]]:
    """A turn's assistant / tool messages (a plain assistant answer for text turns)."""
    if turn.messages:
        return [dict(m) for m in turn.messages]
    return [{"role": "assistant", "content": turn.response}]


def conversation(task_prompt: Sequence[Mapping[str, Any]], turns: Sequence[Any]) -> list[dict]:
    """The task's prompt and `turns` as the chat they were (requests as user messages)."""
    messages = [dict(m) for m in task_prompt]
    for i, turn in enumerate(turns):
        if i > 0:
            messages.append({"role": "user", "content": turn.observation or ""})
        messages.extend(turn_messages(turn))
    return messages


def instruction(
    task_prompt: Sequence[Mapping[str, Any]] | str,
    turn: Any,
    kind: str,
    templates: Templates,
    attempt: str | None = None,
) -> dict[str, str]:
    """The user message after an attempt: the restored note and the filled template."""
    if kind not in ITERATION_KINDS:
        raise ValueError(f"kind must be 'improve' or 'diverge', got {kind!r}")
    template = templates.improve if kind == "improve" else templates.diverge
    request = turn.observation if turn.observation is not None else task_text(task_prompt)
    shown = turn.text if attempt is None else attempt
    return {"role": "user", "content": RESTORED_NOTE + "\n\n" + fill(template, request, shown)}


def render_tool_iteration(
    task_prompt: Sequence[Mapping[str, Any]],
    turns: Sequence[Any],
    kind: str,
    templates: Templates,
    attempt: str | None = None,
) -> list[dict[str, Any]]:
    """The improve / diverge prompt of a structured history whose last turn is the attempt.

    `attempt` replaces the attempt's text in the template (e.g. shortened to a budget); the
    attempt's messages are shown whole."""
    if isinstance(task_prompt, str) or not turns:
        raise ValueError("a tool-use iteration needs the task's chat prompt and at least one turn")
    messages = conversation(task_prompt, turns)
    messages.append(instruction(task_prompt, turns[-1], kind, templates, attempt))
    return messages
