"""The batched numpy buffer: residents and a step's children in plain arrays, the N highest
kept after each `add`, as a speed anchor for steps whose batch is large relative to N.

Keeping the N highest of residents ∪ children (score descending, then smallest id) is the
resident set that inserting the children one at a time under the `not_below_min` rule leaves
(`always` differs only in sparing the last child). Sampling computes the priorities from the
scores at every call, as the naive anchor does (rank by argsort, proportional relative to the
top score, softmax shifted by it), mixed with staleness. Ids stay sorted, so `update_scores`
finds them by binary search. No lineage, no checks.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


class TopNumpyArchive:
    def __init__(
        self,
        capacity: int,
        *,
        prioritization: str = "proportional",
        temperature: float = 1.0,
        staleness_coef: float = 0.0,
        seed: int = 0,
        **_: object,
    ) -> None:
        self.cap, self.prio, self.t, self.c = capacity, prioritization, temperature, staleness_coef
        self.rng = np.random.default_rng(seed)
        self.id = np.empty(0, np.int64)
        self.score = np.empty(0)
        self.last = np.empty(0, np.int64)
        self.payload = np.empty(0, object)
        self.next_id = 0

    def __len__(self) -> int:
        return len(self.id)

    def __contains__(self, i: object) -> bool:
        j = np.searchsorted(self.id, i)
        return bool(j < len(self.id) and self.id[j] == i)

    def sample(self, k: int, *, step: int = 0) -> np.ndarray:
        s, n = self.score, len(self.score)
        if self.prio == "rank":
            h = np.empty(n)
            h[np.argsort(-s, kind="stable")] = np.arange(1, n + 1) ** (-1 / self.t)
        elif self.prio == "softmax":
            h = np.exp((s - s.max()) / self.t)
        else:
            h = (s / s.max()) ** (1 / self.t)
        if self.c:
            age = (step - self.last).astype(float)
            h = (1 - self.c) * h / h.sum() + self.c * age / max(age.sum(), 1e-300)
        cdf = np.cumsum(h)
        slots = np.searchsorted(cdf, self.rng.random(k) * cdf[-1], side="right")
        np.minimum(slots, n - 1, out=slots)
        self.last[slots] = step
        return self.id[slots].astype(np.uint64)

    def update_scores(self, ids: np.ndarray, scores: np.ndarray) -> None:
        self.score[np.searchsorted(self.id, ids.astype(np.int64))] = scores

    def add(
        self, payloads: Sequence[bytes], scores: np.ndarray, *, step: int = 0, **_: object
    ) -> np.ndarray:
        m = len(payloads)
        new = np.arange(self.next_id, self.next_id + m)
        self.next_id += m
        ids = np.concatenate([self.id, new])
        score = np.concatenate([self.score, scores])
        last = np.concatenate([self.last, np.full(m, step, np.int64)])
        payload = np.concatenate([self.payload, np.fromiter(payloads, object, m)])
        n = len(ids)
        if n > self.cap:
            # The N highest by (score descending, id ascending), in O(N + m); a boolean mask
            # keeps the ids sorted.
            t = np.partition(score, n - self.cap)[n - self.cap]
            keep = score > t
            keep[np.flatnonzero(score == t)[: self.cap - int(keep.sum())]] = True
            ids, score, last, payload = ids[keep], score[keep], last[keep], payload[keep]
        self.id, self.score, self.last, self.payload = ids, score, last, payload
        return new.astype(np.uint64)
