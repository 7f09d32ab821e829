"""Chat prompts for base tasks and for ExIt's self-improvement / self-divergence steps."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

Message = dict[str, str]


@dataclass(frozen=True)
class Templates:
    system: str | None
    improve: str
    diverge: str


_MATH_SYSTEM = (
    "You are a careful problem solver. Reason step by step and put the final answer in \\boxed{}."
)

TEMPLATES: dict[str, Templates] = {
    "math": Templates(
        system=_MATH_SYSTEM,
        improve=(
            "Problem:\n{task}\n\nHere is a previous attempt at this problem:\n{attempt}\n\n"
            "Improve this attempt: check every step, fix any mistakes and give a better, complete "
            "solution. End with the final answer in \\boxed{{}}."
        ),
        diverge=(
            "Problem:\n{task}\n\nHere is a previous attempt at this problem:\n{attempt}\n\n"
            "Solve the problem again using a significantly different approach from the previous "
            "attempt. End with the final answer in \\boxed{{}}."
        ),
    ),
    "generic": Templates(
        system=None,
        improve=(
            "Task:\n{task}\n\nHere is a previous attempt:\n{attempt}\n\n"
            "Improve this attempt: fix its mistakes and make it better."
        ),
        diverge=(
            "Task:\n{task}\n\nHere is a previous attempt:\n{attempt}\n\n"
            "Solve the task again with a significantly different approach."
        ),
    ),
}


def templates_for(
    domain: str,
    improve: str | None = None,
    diverge: str | None = None,
    system: str | None = None,
) -> Templates:
    if domain not in TEMPLATES:
        raise ValueError(f"unknown prompt domain {domain!r}; known: {sorted(TEMPLATES)}")
    base = TEMPLATES[domain]
    result = Templates(
        system=system if system is not None else base.system,
        improve=improve or base.improve,
        diverge=diverge or base.diverge,
    )
    for name, text in (("improve", result.improve), ("diverge", result.diverge)):
        if "{task}" not in text or "{attempt}" not in text:
            raise ValueError(f"the {name} template needs {{task}} and {{attempt}} placeholders")
    return result


def clip_attempt(text: str, budget: int) -> str:
    """Keeps the head and the tail (where final answers live) of an over-long attempt."""
    if len(text) <= budget:
        return text
    marker = "\n[...]\n"
    head = (budget - len(marker)) // 3
    tail = budget - len(marker) - head
    return text[:head] + marker + text[-tail:]


def task_text(prompt: str | Sequence[Mapping[str, str]]) -> str:
    """The task statement: a string, or the last user message of a chat prompt."""
    if isinstance(prompt, str):
        return prompt
    users = [m["content"] for m in prompt if m.get("role") == "user"]
    if not users:
        raise ValueError("a chat prompt needs at least one user message")
    return users[-1]


def base_messages(prompt: str | Sequence[Mapping[str, str]], templates: Templates) -> list[Message]:
    """A base task as chat messages (a chat prompt is kept as given)."""
    if not isinstance(prompt, str):
        return [dict(m) for m in prompt]
    messages: list[Message] = []
    if templates.system:
        messages.append({"role": "system", "content": templates.system})
    messages.append({"role": "user", "content": prompt})
    return messages


def iteration_messages(
    prompt: str | Sequence[Mapping[str, str]],
    attempt: str,
    kind: str,
    templates: Templates,
    clip_chars: int,
) -> list[Message]:
    """An improve / diverge step: the base task and the (clipped) earlier attempt."""
    if kind not in ("improve", "diverge"):
        raise ValueError(f"kind must be 'improve' or 'diverge', got {kind!r}")
    template = templates.improve if kind == "improve" else templates.diverge
    content = template.format(task=task_text(prompt), attempt=clip_attempt(attempt, clip_chars))
    messages: list[Message] = []
    system = templates.system
    if not isinstance(prompt, str):
        system = next((m["content"] for m in prompt if m.get("role") == "system"), system)
    if system:
        messages.append({"role": "system", "content": system})
    messages.append({"role": "user", "content": content})
    return messages
