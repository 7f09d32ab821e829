"""`TaskInstance` (one training prompt and what re-rendering it needs) and `Feedback` (what
`ExItCurriculum.observe` returns)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from exit_verl.history import History
from exit_verl.prompts import Message, TaskPrompt, Templates, base_messages, render_messages
from exit_verl.tool_prompts import is_structured, render_tool_iteration


@dataclass
class TaskInstance:
    """One training prompt: a base task, or one iteration step on an archived history.

    `task_prompt` and `history` are what re-rendering needs: `render(templates, attempt)`
    builds the same prompt with another attempt text (e.g. shortened to a token budget).
    """

    prompt: list[Message]
    base_id: str
    base_index: int
    archive_id: int | None
    kind: str
    depth: int
    answer: Any
    data_source: str
    task_prompt: TaskPrompt = ""
    previous_attempt: str | None = None
    previous_reward: float | None = None
    history: History | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def state(self) -> dict[str, Any]:
        """What `ExItCurriculum.restore_instance` rebuilds this instance from (plain JSON):
        a prompt issued but not yet observed is saved with a checkpoint this way."""
        return {
            "base_index": self.base_index,
            "kind": self.kind,
            "archive_id": self.archive_id,
            "depth": self.depth,
            "history": None if self.history is None else self.history.to_bytes().decode(),
            "extra": dict(self.extra),
        }

    def render(self, templates: Templates, attempt: str | None = None) -> list[Message]:
        """This instance's prompt; `attempt` replaces the previous attempt's text."""
        if self.history is None or not self.history.turns or self.kind == "base":
            return base_messages(self.task_prompt, templates)
        if is_structured(self.history.turns):  # tool use: turns as chat and tool messages
            return render_tool_iteration(
                base_messages(self.task_prompt, templates),
                self.history.turns,
                self.kind,
                templates,
                attempt,
            )
        last = self.history.turns[-1]
        return render_messages(
            self.task_prompt,
            last.response if attempt is None else attempt,
            self.kind,
            templates,
            context=self.history.context,
            request=last.observation,
            error=last.feedback,
        )


@dataclass(frozen=True)
class Feedback:
    """What `observe` returns; arrays of shape (n, G) unless noted.

    `rewards` are the training rewards verl's advantage estimator must see;
    `advantage_scale` (>= 0) multiplies the estimator's advantages (exactly 1 without an
    advantage-side bonus); `learnability` (n,) is each group's S.
    """

    rewards: np.ndarray
    advantage_scale: np.ndarray
    learnability: np.ndarray
