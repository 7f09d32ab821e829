"""`History`: the payload of one archive entry — a base task plus the turns answered so far.

A history names its base task by index, holds every turn (what the environment said before
the turn, the policy's latest iterate of its response, an optional feedback text such as an
error trace, and the response's reward when known) and the kind of step that produced its
last response. Single-turn tasks have one turn; the curriculum-only ablation archives base
tasks themselves, with no turns.

Multi-turn tasks (paper §4): selection may cut a history to a prefix of its turns
(`cut`), and inserting a history inserts each per-turn partial history too (`prefixes`).

`to_bytes` / `from_bytes` are the one description of the stored format (versioned JSON,
UTF-8); `from_bytes` validates everything before building the object.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass

FORMAT_VERSION = 1
KINDS = ("base", "improve", "diverge")


@dataclass(frozen=True)
class Turn:
    """One turn: the environment's message before it, and the policy's response.

    `observation` is None for the first turn (the request is the base task itself).
    `reward` is the response's quality rescaled to [0, 1], None when not known (e.g. an
    intermediate turn of a multi-turn episode that is only scored at its end).
    """

    observation: str | None
    response: str
    reward: float | None = None
    feedback: str | None = None

    def __post_init__(self) -> None:
        if self.observation is not None and not isinstance(self.observation, str):
            raise ValueError("Turn.observation must be a string or None")
        if not isinstance(self.response, str):
            raise ValueError("Turn.response must be a string")
        if self.feedback is not None and not isinstance(self.feedback, str):
            raise ValueError("Turn.feedback must be a string or None")
        if self.reward is not None:
            if isinstance(self.reward, bool) or not isinstance(self.reward, (int, float)):
                raise ValueError("Turn.reward must be a number or None")
            if not (math.isfinite(self.reward) and 0.0 <= self.reward <= 1.0):
                raise ValueError(f"Turn.reward must be in [0, 1], got {self.reward}")


@dataclass(frozen=True)
class History:
    """A base task and its turns so far; the payload of one archive entry."""

    base_index: int
    turns: tuple[Turn, ...] = ()
    kind: str = "base"

    def __post_init__(self) -> None:
        if isinstance(self.base_index, bool) or not isinstance(self.base_index, int):
            raise ValueError("History.base_index must be an int")
        if self.base_index < 0:
            raise ValueError(f"History.base_index must be >= 0, got {self.base_index}")
        if not isinstance(self.turns, tuple) or not all(isinstance(t, Turn) for t in self.turns):
            raise ValueError("History.turns must be a tuple of Turn")
        if self.turns and self.turns[0].observation is not None:
            raise ValueError("the first turn answers the base task: its observation is None")
        if any(t.observation is None for t in self.turns[1:]):
            raise ValueError("every turn after the first needs the observation that led to it")
        if self.kind not in KINDS:
            raise ValueError(f"History.kind must be one of {KINDS}, got {self.kind!r}")

    # -- what the prompt shows ------------------------------------------------------------

    @property
    def attempt(self) -> str | None:
        """The latest response (the one the next step iterates on); None without turns."""
        return self.turns[-1].response if self.turns else None

    @property
    def reward(self) -> float | None:
        """The latest response's reward in [0, 1], when known."""
        return self.turns[-1].reward if self.turns else None

    @property
    def context(self) -> tuple[Turn, ...]:
        """The turns before the latest one (empty for single-turn tasks)."""
        return self.turns[:-1]

    # -- multi-turn -----------------------------------------------------------------------

    def cut(self, length: int) -> History:
        """The partial history of the first `length` turns (1 <= length <= len(turns))."""
        if not 1 <= length <= len(self.turns):
            raise ValueError(f"cut length must be in [1, {len(self.turns)}], got {length}")
        if length == len(self.turns):
            return self
        return History(self.base_index, self.turns[:length], self.kind)

    def prefixes(self, start: int = 1) -> list[History]:
        """The partial histories ending at turn `start`, `start` + 1, ..., the last turn."""
        if not 1 <= start <= max(len(self.turns), 1):
            raise ValueError(f"start must be in [1, {len(self.turns)}], got {start}")
        return [self.cut(n) for n in range(start, len(self.turns) + 1)]

    # -- storage --------------------------------------------------------------------------

    def to_bytes(self) -> bytes:
        turns = [
            {"observation": t.observation, "response": t.response, "reward": t.reward}
            | ({"feedback": t.feedback} if t.feedback is not None else {})
            for t in self.turns
        ]
        record = {"v": FORMAT_VERSION, "base": self.base_index, "kind": self.kind, "turns": turns}
        return json.dumps(record, ensure_ascii=False, separators=(",", ":")).encode()

    @classmethod
    def from_bytes(cls, data: bytes | str) -> History:
        """Parses and validates a stored history; ValueError on anything malformed."""
        try:
            record = json.loads(data)
        except (UnicodeDecodeError, json.JSONDecodeError, TypeError) as e:
            raise ValueError(f"not a stored history: {e}") from None
        if not isinstance(record, dict) or record.get("v") != FORMAT_VERSION:
            raise ValueError("not a stored history (missing or unknown format version)")
        if set(record) != {"v", "base", "kind", "turns"}:
            raise ValueError(f"stored history has unexpected keys {sorted(record)}")
        turns = record["turns"]
        if not isinstance(turns, list):
            raise ValueError("stored history: 'turns' must be a list")
        parsed = []
        for turn in turns:
            if not isinstance(turn, dict) or not {"observation", "response", "reward"} <= set(turn):
                raise ValueError("stored history: malformed turn")
            if not set(turn) <= {"observation", "response", "reward", "feedback"}:
                raise ValueError(f"stored history: unexpected turn keys {sorted(turn)}")
            parsed.append(
                Turn(turn["observation"], turn["response"], turn["reward"], turn.get("feedback"))
            )
        return cls(record["base"], tuple(parsed), record["kind"])
