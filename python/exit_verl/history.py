"""`History`: the payload of one archive entry — a base task plus the turns answered so far.

A history names its base task by index, holds every turn (what the environment said before
the turn, the policy's latest iterate of its response, an optional feedback text such as an
error trace, the response's reward when known and, for tool use, the turn's structured
messages) and the kind of step that produced its last response. Single-turn tasks have one
turn; the curriculum-only ablation archives base tasks themselves, with no turns.

Multi-turn tasks (paper §4): selection may cut a history to a prefix of its turns
(`cut`), and inserting a history inserts each per-turn partial history too (`prefixes`).

`to_bytes` / `from_bytes` are the one description of the stored format (versioned JSON,
UTF-8); `from_bytes` validates everything before building the object. Version 1 holds text
turns; version 2 (written only when a turn carries messages) adds each turn's `messages`.
Both are read; any other version is refused. `turns_to_json` / `turns_from_json` carry a
rollout's turns in the same per-turn format (e.g. from a verl agent loop to the trainer).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

FORMAT_VERSION = 2  # written only when a turn has messages; text-only histories stay version 1
READABLE_VERSIONS = (1, 2)
KINDS = ("base", "improve", "diverge")
MESSAGE_ROLES = ("assistant", "tool")
_TURN_KEYS = {"observation", "response", "reward", "feedback", "messages"}


@dataclass(frozen=True)
class Turn:
    """One turn: the environment's message before it, and the policy's response.

    `observation` is None for the first turn (the request is the base task itself).
    `reward` is the response's quality rescaled to [0, 1], None when not known (e.g. an
    intermediate turn of a multi-turn episode that is only scored at its end).
    `messages` (tool use) are the turn's chat messages after its request, in order: assistant
    messages (`content`, optional OpenAI-style `tool_calls`, each `{"type": "function",
    "function": {"name", "arguments"}}`) and `tool` messages with the calls' outputs; then
    `response` is the turn's final answer text. Stored as plain JSON values (copied).
    """

    observation: str | None
    response: str
    reward: float | None = None
    feedback: str | None = None
    messages: tuple[dict[str, Any], ...] = ()

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
        object.__setattr__(self, "messages", _checked_messages(self.messages))

    @property
    def calls(self) -> list[tuple[str, Any]]:
        """(name, arguments) of the turn's tool calls, in order."""
        return [
            (call["function"]["name"], call["function"].get("arguments"))
            for m in self.messages
            for call in m.get("tool_calls") or ()
        ]

    @property
    def text(self) -> str:
        """The turn as one text: its tool calls (name and JSON arguments), then its response."""
        lines = [f"{name}({json.dumps(args, ensure_ascii=False)})" for name, args in self.calls]
        return "\n".join([*lines, self.response]) if lines else self.response

    def to_dict(self) -> dict[str, Any]:
        record: dict[str, Any] = {
            "observation": self.observation,
            "response": self.response,
            "reward": self.reward,
        }
        if self.feedback is not None:
            record["feedback"] = self.feedback
        if self.messages:
            record["messages"] = [dict(m) for m in self.messages]
        return record

    @classmethod
    def from_dict(cls, record: Any, version: int = FORMAT_VERSION) -> Turn:
        """A stored turn; ValueError on anything malformed."""
        if not isinstance(record, dict) or not {"observation", "response", "reward"} <= set(record):
            raise ValueError("stored history: malformed turn")
        allowed = _TURN_KEYS if version >= 2 else _TURN_KEYS - {"messages"}
        if not set(record) <= allowed:
            raise ValueError(f"stored history: unexpected turn keys {sorted(record)}")
        messages = record.get("messages", ())
        if not isinstance(messages, list | tuple):
            raise ValueError("stored history: a turn's messages must be a list")
        return cls(
            record["observation"],
            record["response"],
            record["reward"],
            record.get("feedback"),
            tuple(messages),
        )


def _checked_messages(messages: Any) -> tuple[dict[str, Any], ...]:
    """A copy of a turn's messages as plain JSON values; ValueError when malformed."""
    if not isinstance(messages, tuple | list):
        raise ValueError("Turn.messages must be a tuple of message dicts")
    try:
        copied = json.loads(json.dumps(list(messages), allow_nan=False))
    except (TypeError, ValueError) as e:
        raise ValueError(f"Turn.messages must be JSON values: {e}") from None
    for m in copied:
        if not isinstance(m, dict) or m.get("role") not in MESSAGE_ROLES:
            raise ValueError(f"Turn.messages: each message needs a role in {MESSAGE_ROLES}")
        if not isinstance(m.get("content"), str):
            raise ValueError("Turn.messages: each message needs text content")
        calls = m.get("tool_calls")
        if calls is None:
            continue
        if m["role"] != "assistant" or not isinstance(calls, list):
            raise ValueError("Turn.messages: tool_calls must be a list on an assistant message")
        for call in calls:
            function = call.get("function") if isinstance(call, dict) else None
            if not isinstance(function, dict) or not isinstance(function.get("name"), str):
                raise ValueError("Turn.messages: a tool call needs a function with a name")
    return tuple(copied)


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
        """The latest response as text (the one the next step iterates on; a tool-use turn's
        calls and answer, `Turn.text`); None without turns."""
        return self.turns[-1].text if self.turns else None

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
        version = FORMAT_VERSION if any(t.messages for t in self.turns) else 1
        turns = [t.to_dict() for t in self.turns]
        record = {"v": version, "base": self.base_index, "kind": self.kind, "turns": turns}
        return json.dumps(record, ensure_ascii=False, separators=(",", ":")).encode()

    @classmethod
    def from_bytes(cls, data: bytes | str) -> History:
        """Parses and validates a stored history; ValueError on anything malformed."""
        try:
            record = json.loads(data)
        except (UnicodeDecodeError, json.JSONDecodeError, TypeError) as e:
            raise ValueError(f"not a stored history: {e}") from None
        if not isinstance(record, dict) or "v" not in record:
            raise ValueError("not a stored history (no format version)")
        version = record["v"]
        if isinstance(version, bool) or version not in READABLE_VERSIONS:
            raise ValueError(
                f"unsupported stored history format version {version!r} (this build reads "
                f"{READABLE_VERSIONS}): written by a newer exit-verl?"
            )
        if set(record) != {"v", "base", "kind", "turns"}:
            raise ValueError(f"stored history has unexpected keys {sorted(record)}")
        turns = record["turns"]
        if not isinstance(turns, list):
            raise ValueError("stored history: 'turns' must be a list")
        parsed = tuple(Turn.from_dict(turn, version) for turn in turns)
        return cls(record["base"], parsed, record["kind"])


def turns_to_json(turns: Sequence[Turn]) -> str:
    """A rollout's turns as JSON text (the stored per-turn format)."""
    return json.dumps([t.to_dict() for t in turns], ensure_ascii=False, separators=(",", ":"))


def turns_from_json(text: str | bytes) -> tuple[Turn, ...]:
    """The turns of `turns_to_json`; ValueError on anything malformed."""
    try:
        records = json.loads(text)
    except (UnicodeDecodeError, json.JSONDecodeError, TypeError) as e:
        raise ValueError(f"not a list of turns: {e}") from None
    if not isinstance(records, list):
        raise ValueError("not a list of turns")
    return tuple(Turn.from_dict(r) for r in records)
