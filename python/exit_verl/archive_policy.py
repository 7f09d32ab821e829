"""What the curriculum's archive holds, and how an archived entry becomes a training prompt.

Two policies, picked by `ExItConfig.iterate`:

- `IterateHistories` (ExIt, every column but "curriculum"): entries are partial histories; a
  replay asks the policy to improve (or diverge from) the history's last attempt, one level
  deeper; each observed group re-scores its entry and adds children (new histories).
- `ReplayBaseTasks` (the curriculum-only ablation): one entry per base task, scored by its
  latest group's learnability and replayed unchanged as the base task.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import numpy as np

from exit_verl.archive import TaskArchive
from exit_verl.config import ExItConfig
from exit_verl.history import History, Turn

if TYPE_CHECKING:
    from exit_verl.task_instance import TaskInstance


@dataclass(frozen=True)
class Admitted:
    """What one archive update added: the payloads offered, their ids, how many were refused."""

    payloads: list[bytes]
    ids: list[int]
    rejected: int

    @property
    def added(self) -> int:
        return len(self.ids) - self.rejected


NOTHING = Admitted([], [], 0)


@dataclass(frozen=True)
class Replay:
    """How an archived history is presented: its kind, depth and (possibly cut) history."""

    kind: str
    depth: int
    history: History


class ArchivePolicy(ABC):
    """One archive policy; `config` is the curriculum's."""

    iterate: bool

    def __init__(self, config: ExItConfig) -> None:
        self.config = config

    @abstractmethod
    def replay(
        self, archive_id: int, history: History, depth: int, diverge: bool, rng: np.random.Generator
    ) -> Replay: ...

    @abstractmethod
    def check_instance(self, i: int, inst: TaskInstance) -> None:
        """ValueError when `inst` cannot come from this policy."""

    @abstractmethod
    def update(
        self,
        archive: TaskArchive,
        batch: Sequence[TaskInstance],
        rollouts: list[list[tuple[Turn, ...]]],
        scores: np.ndarray,
        learn: np.ndarray,
        embeddings: np.ndarray | None,
        step: int,
        rng: np.random.Generator,
    ) -> Admitted:
        """Re-scores replayed entries with their group's learnability, then adds entries."""

    def restored(self, archive: TaskArchive, num_tasks: int) -> ArchivePolicy:
        """This policy over a restored `archive` (ValueError when the archive cannot be
        this policy's); changes nothing."""
        return type(self)(self.config)


class IterateHistories(ArchivePolicy):
    iterate = True

    def replay(
        self, archive_id: int, history: History, depth: int, diverge: bool, rng: np.random.Generator
    ) -> Replay:
        if not history.turns:
            raise ValueError(f"archive entry {archive_id} holds no attempt to iterate on")
        if len(history.turns) > 1:  # multi-turn: continue from a random turn prefix
            history = history.cut(int(rng.integers(1, len(history.turns) + 1)))
        return Replay("diverge" if diverge else "improve", depth + 1, history)

    def check_instance(self, i: int, inst: TaskInstance) -> None:
        if inst.kind == "base" and inst.archive_id is not None:
            raise ValueError(f"batch[{i}]: base tasks are replayed only with iterate=False")

    def update(
        self,
        archive: TaskArchive,
        batch: Sequence[TaskInstance],
        rollouts: list[list[tuple[Turn, ...]]],
        scores: np.ndarray,
        learn: np.ndarray,
        embeddings: np.ndarray | None,
        step: int,
        rng: np.random.Generator,
    ) -> Admitted:
        _rescore(archive, _replayed_scores(batch, learn))
        payloads, child_scores, parents, rows = [], [], [], []
        for i, inst in enumerate(batch):
            if not self._adds_children(inst, learn[i]):
                continue
            for j in self._child_indices(scores[i], rng):
                child = _child_history(inst, rollouts[i][j], float(scores[i, j]))
                start = len(inst.history.turns) if inst.history and inst.history.turns else 1
                for prefix in child.prefixes(start):  # multi-turn: every new partial history
                    payloads.append(prefix.to_bytes())
                    child_scores.append(float(learn[i]))
                    parents.append(-1 if inst.archive_id is None else inst.archive_id)
                    if archive.embedding_dim is not None:
                        assert embeddings is not None
                        rows.append(embeddings[i, j])
        return _add(archive, payloads, child_scores, parents, rows, step)

    def _adds_children(self, inst: TaskInstance, score: float) -> bool:
        c = self.config
        if c.min_child_learnability is not None and not score > c.min_child_learnability:
            return False
        return c.max_depth is None or inst.depth + 1 <= c.max_depth

    def _child_indices(self, group_scores: np.ndarray, rng: np.random.Generator) -> list[int]:
        """Which of the G responses become children (docs/exit.md: one at random)."""
        g = len(group_scores)
        k = self.config.children_per_group
        if k == 0 or k >= g:
            return list(range(g))
        if self.config.child_selection == "best":
            return [int(j) for j in np.argsort(-group_scores, kind="stable")[:k]]
        return [int(j) for j in rng.choice(g, size=k, replace=False)]


class ReplayBaseTasks(ArchivePolicy):
    iterate = False

    def __init__(self, config: ExItConfig, entries: dict[int, int] | None = None) -> None:
        super().__init__(config)
        self.entries: dict[int, int] = dict(entries or {})  # base index -> archive id

    def replay(
        self, archive_id: int, history: History, depth: int, diverge: bool, rng: np.random.Generator
    ) -> Replay:
        return Replay("base", 0, history)

    def check_instance(self, i: int, inst: TaskInstance) -> None:
        return None

    def update(
        self,
        archive: TaskArchive,
        batch: Sequence[TaskInstance],
        rollouts: list[list[tuple[Turn, ...]]],
        scores: np.ndarray,
        learn: np.ndarray,
        embeddings: np.ndarray | None,
        step: int,
        rng: np.random.Generator,
    ) -> Admitted:
        rescored = _replayed_scores(batch, learn)
        fresh: dict[int, float] = {}
        for inst, s in zip(batch, learn, strict=True):
            if inst.archive_id is None:
                entry = self.entries.get(inst.base_index)
                if entry is not None and entry in archive:
                    rescored[entry] = float(s)
                else:
                    fresh[inst.base_index] = float(s)
        _rescore(archive, rescored)
        payloads = [History(index).to_bytes() for index in fresh]
        admitted = _add(archive, payloads, list(fresh.values()), [-1] * len(fresh), [], step)
        for index, archive_id in zip(fresh, admitted.ids, strict=True):
            self.entries[index] = int(archive_id)
        return admitted

    def restored(self, archive: TaskArchive, num_tasks: int) -> ReplayBaseTasks:
        entries = {}
        if len(archive):
            ids = archive.ids()
            for archive_id, payload in zip(ids, archive.get(ids), strict=True):
                index = History.from_bytes(payload).base_index
                if index >= num_tasks:
                    raise ValueError(
                        f"archive entry {archive_id} names base task {index} of {num_tasks}"
                    )
                entries[index] = int(archive_id)
        return ReplayBaseTasks(self.config, entries)


def archive_policy(config: ExItConfig) -> ArchivePolicy:
    """The policy `config.iterate` selects."""
    return IterateHistories(config) if config.iterate else ReplayBaseTasks(config)


def _replayed_scores(batch: Sequence[TaskInstance], learn: np.ndarray) -> dict[int, float]:
    """Replayed entry id -> its group's learnability (the last group of an id wins)."""
    return {
        inst.archive_id: float(s)
        for inst, s in zip(batch, learn, strict=True)
        if inst.archive_id is not None
    }


def _rescore(archive: TaskArchive, scores: dict[int, float]) -> None:
    live = {a: s for a, s in scores.items() if a in archive}  # evicted since: nothing to do
    if live:
        archive.update_scores(list(live), list(live.values()))


def _child_history(inst: TaskInstance, rollout: tuple[Turn, ...], reward: float) -> History:
    """The parent's turns with the new iterate of its last response (and later turns)."""
    first, *rest = rollout
    if inst.history is not None and inst.history.turns:
        first = replace(first, observation=inst.history.turns[-1].observation)
        prefix = list(inst.history.context)
    else:
        prefix = []
    turns = [*prefix, first, *rest]
    turns[-1] = replace(turns[-1], reward=reward)
    return History(inst.base_index, tuple(turns), inst.kind)


def _add(
    archive: TaskArchive,
    payloads: list[bytes],
    scores: list[float],
    parents: list[int],
    rows: list[np.ndarray],
    step: int,
) -> Admitted:
    if not payloads:
        return NOTHING
    before = int(archive.stats().get("rejected", 0))
    ids = archive.add(
        payloads,
        scores,
        parents=parents,
        embeddings=np.stack(rows) if rows else None,
        step=step,
    )
    rejected = int(archive.stats().get("rejected", 0)) - before
    return Admitted(payloads, [int(i) for i in ids], rejected)
