"""A vectorized numpy archive with TaskArchive's semantics: the benchmark's fair baseline.

Rank or proportional priority mixed with PLR staleness (a sort per `sample`), i.i.d. draws by
inverse CDF (what `Generator.choice(p=...)` does, minus its validation passes), lowest-score
eviction with the (score, smallest id) tie rule via argpartition, lineage kept for evicted ids.
No input validation beyond what numpy does: it is a speed reference, not a product.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def _grow(arr: np.ndarray, size: int, fill: int) -> np.ndarray:
    if size <= arr.shape[0]:
        return arr
    out = np.full(max(size, 2 * arr.shape[0]), fill, dtype=arr.dtype)
    out[: arr.shape[0]] = arr
    return out


class NumpyArchive:
    """Slots 0..n-1 hold the residents; per-id arrays hold lineage and the id -> slot map."""

    def __init__(
        self,
        capacity: int,
        *,
        embedding_dim: int | None = None,
        prioritization: str = "rank",
        temperature: float = 1.0,
        staleness_coef: float = 0.0,
        seed: int = 0,
    ) -> None:
        self.capacity = capacity
        self.prioritization = prioritization
        self.temperature = temperature
        self.staleness_coef = staleness_coef
        self.rng = np.random.default_rng(seed)
        self.n = 0
        self.next_id = 0
        self.slot_id = np.zeros(capacity, dtype=np.int64)
        self.score = np.zeros(capacity, dtype=np.float64)
        self.last_step = np.zeros(capacity, dtype=np.int64)
        self.added_step = np.zeros(capacity, dtype=np.int64)
        self.times_sampled = np.zeros(capacity, dtype=np.int64)
        self.payload = np.empty(capacity, dtype=object)
        self.embedding = (
            None if embedding_dim is None else np.zeros((capacity, embedding_dim), np.float32)
        )
        start = 1024
        self.id_slot = np.full(start, -1, dtype=np.int64)
        self.parent = np.full(start, -1, dtype=np.int64)
        self.root = np.zeros(start, dtype=np.int64)
        self.depth = np.zeros(start, dtype=np.int32)
        # Rank weights (1/r)^(1/T) depend only on n; cached across calls.
        self._rank_h = np.empty(0)

    def __len__(self) -> int:
        return self.n

    def _priorities(self, step: int) -> np.ndarray:
        n = self.n
        score = self.score[:n]
        if self.prioritization == "rank":
            if self._rank_h.shape[0] != n:
                self._rank_h = (1.0 / np.arange(1, n + 1)) ** (1.0 / self.temperature)
            order = np.argsort(-score)
            ordered = score[order]
            if np.any(ordered[1:] == ordered[:-1]):  # ties: smaller id ranks first
                order = np.lexsort((self.slot_id[:n], -score))
            h = np.empty(n)
            h[order] = self._rank_h
        else:
            h = score ** (1.0 / self.temperature)
            if not h.any():
                h = np.ones(n)
        p = h / h.sum()
        c = self.staleness_coef
        if c:
            age = (step - self.last_step[:n]).astype(np.float64)
            total = age.sum()
            pc = age / total if total > 0 else np.full(n, 1.0 / n)
            p = (1.0 - c) * p + c * pc
        return p

    def sample(self, k: int, *, step: int = 0) -> np.ndarray:
        cdf = np.cumsum(self._priorities(step))
        slots = np.searchsorted(cdf, self.rng.random(k) * cdf[-1], side="right")
        np.minimum(slots, self.n - 1, out=slots)
        self.last_step[slots] = step
        np.add.at(self.times_sampled, slots, 1)
        return self.slot_id[slots].astype(np.uint64)

    def update_scores(self, ids: np.ndarray, scores: np.ndarray) -> None:
        slots = self.id_slot[ids.astype(np.int64)]
        if (slots < 0).any():
            raise KeyError(int(ids[np.argmin(slots)]))
        self.score[slots] = scores

    def add(
        self,
        payloads: Sequence[bytes],
        scores: np.ndarray,
        *,
        parents: np.ndarray | None = None,
        embeddings: np.ndarray | None = None,
        step: int = 0,
    ) -> np.ndarray:
        m = len(payloads)
        ids = np.arange(self.next_id, self.next_id + m, dtype=np.int64)
        self.next_id += m
        self._record_lineage(ids, parents)
        free = self.capacity - self.n
        evictions = max(0, m - free)
        # One-at-a-time insertion with "evict the minimum, never the entry being inserted"
        # leaves top_(cap-1)(residents + all new but the last) + the last new entry, so the
        # evicted set is the `evictions` smallest (score, id) keys among those candidates.
        keep_new = np.ones(m, dtype=bool)
        freed_slots = np.empty(0, dtype=np.int64)
        if evictions:
            cand_score = np.concatenate([self.score[: self.n], scores[:-1]])
            cand_id = np.concatenate([self.slot_id[: self.n], ids[:-1]])
            lost = self._smallest(cand_score, cand_id, evictions)
            old = lost[lost < self.n]
            keep_new[lost[lost >= self.n] - self.n] = False
            self.id_slot[self.slot_id[old]] = -1
            freed_slots = old
        new_slots = np.concatenate([freed_slots, np.arange(self.n, self.n + min(free, m))])
        kept = np.flatnonzero(keep_new)
        # Each eviction frees a slot, so surviving new entries exactly fill the free slots.
        self._write(new_slots, ids[kept], scores[kept], payloads, kept, embeddings, step)
        self.n += min(free, m)
        return ids.astype(np.uint64)

    def _smallest(self, score: np.ndarray, ids: np.ndarray, count: int) -> np.ndarray:
        """Positions of the `count` smallest (score, id) keys."""
        part = np.argpartition(score, count - 1)
        threshold = score[part[count - 1]]
        below = np.flatnonzero(score < threshold)
        at = np.flatnonzero(score == threshold)
        need = count - below.shape[0]
        if at.shape[0] > need:
            at = at[np.argsort(ids[at], kind="stable")[:need]]
        return np.concatenate([below, at])

    def _record_lineage(self, ids: np.ndarray, parents: np.ndarray | None) -> None:
        end = int(ids[-1]) + 1
        self.id_slot = _grow(self.id_slot, end, -1)
        self.parent = _grow(self.parent, end, -1)
        self.root = _grow(self.root, end, 0)
        self.depth = _grow(self.depth, end, 0)
        if parents is None:
            self.root[ids] = ids
            self.depth[ids] = 0
            return
        parents = parents.astype(np.int64)
        has = parents >= 0
        self.parent[ids] = parents
        # Parents inside the same batch need their own lineage first.
        internal = has & (parents >= ids[0])
        outside = has & ~internal
        self.root[ids] = ids
        self.depth[ids] = 0
        self.root[ids[outside]] = self.root[parents[outside]]
        self.depth[ids[outside]] = self.depth[parents[outside]] + 1
        for i in np.flatnonzero(internal):
            self.root[ids[i]] = self.root[parents[i]]
            self.depth[ids[i]] = self.depth[parents[i]] + 1

    def _write(
        self,
        slots: np.ndarray,
        ids: np.ndarray,
        scores: np.ndarray,
        payloads: Sequence[bytes],
        kept: np.ndarray,
        embeddings: np.ndarray | None,
        step: int,
    ) -> None:
        self.slot_id[slots] = ids
        self.id_slot[ids] = slots
        self.score[slots] = scores
        self.last_step[slots] = step
        self.added_step[slots] = step
        self.times_sampled[slots] = 0
        if kept.shape[0] == len(payloads):
            self.payload[slots] = np.fromiter(payloads, dtype=object, count=len(payloads))
        else:
            self.payload[slots] = np.fromiter(
                (payloads[i] for i in kept), dtype=object, count=kept.shape[0]
            )
        if self.embedding is not None and embeddings is not None:
            self.embedding[slots] = embeddings[kept]

    def ids(self) -> np.ndarray:
        return np.sort(self.slot_id[: self.n]).astype(np.uint64)

    def lowest_scores(self) -> np.ndarray:
        return np.sort(self.score[: self.n])
