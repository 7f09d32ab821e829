"""The naive numpy archive: the ten lines of numpy a user would write, as a speed anchor.

Priorities from the scores at every `sample` (rank by argsort, proportional, or softmax shifted
by the max), the staleness mix, inverse-CDF draws, and `argpartition` eviction of the lowest
residents. It does less than `TaskArchive`: slots stand in for ids, a batch replaces the
batch-size lowest residents (not one at a time), no admission rule, no lineage, no checks.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


class NaiveNumpyArchive:
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
        self.score = np.zeros(capacity)
        self.last = np.zeros(capacity, np.int64)
        self.payload = np.empty(capacity, object)
        self.n = 0

    def __len__(self) -> int:
        return self.n

    def sample(self, k: int, *, step: int = 0) -> np.ndarray:
        s = self.score[: self.n]
        if self.prio == "rank":
            h = np.empty(self.n)
            h[np.argsort(-s, kind="stable")] = np.arange(1, self.n + 1) ** (-1 / self.t)
        elif self.prio == "softmax":
            h = np.exp((s - s.max()) / self.t)
        else:
            h = s ** (1 / self.t)
        if self.c:
            age = (step - self.last[: self.n]).astype(float)
            h = (1 - self.c) * h / h.sum() + self.c * age / max(age.sum(), 1e-300)
        cdf = np.cumsum(h)
        slots = np.searchsorted(cdf, self.rng.random(k) * cdf[-1], side="right")
        np.minimum(slots, self.n - 1, out=slots)
        self.last[slots] = step
        return slots.astype(np.uint64)

    def update_scores(self, ids: np.ndarray, scores: np.ndarray) -> None:
        self.score[ids.astype(np.int64)] = scores

    def add(
        self, payloads: Sequence[bytes], scores: np.ndarray, *, step: int = 0, **_: object
    ) -> np.ndarray:
        m = len(payloads)
        if m > self.cap:  # the batch alone overfills the archive: its last `cap` entries stay
            payloads, scores, m = payloads[m - self.cap :], scores[m - self.cap :], self.cap
        k = min(self.cap - self.n, m)
        slots = np.arange(self.n, self.n + k)
        if m > k:  # full: the lowest residents make room
            lowest = np.argpartition(self.score[: self.n], m - k - 1)[: m - k]
            slots = np.concatenate([slots, lowest])
        self.n += k
        self.score[slots] = scores
        self.last[slots] = step
        self.payload[slots] = np.fromiter(payloads, dtype=object, count=m)
        return slots.astype(np.uint64)
