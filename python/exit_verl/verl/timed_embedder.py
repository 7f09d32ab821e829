"""The diversity-bonus embedder as it runs in verl's task runner: own threads, timed.

verl's `TaskRunnerV1` is a Ray actor started without `num_cpus`, and Ray sets
OMP_NUM_THREADS=1 for such actors, so torch (and the MiniLM embedder with it) would run on one
thread there. `TimedEmbedder` raises torch's thread count for the duration of each call,
restores it after, and adds up the seconds spent, which the trainer reports per step.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence

import numpy as np

from exit_verl.embedding import Embedder, make_embedder


def available_cpus() -> int:
    """CPUs this process may run on (its affinity mask where the OS has one)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


class TimedEmbedder:
    """Wraps `make_embedder(name)` (created on first use) with a torch thread count."""

    def __init__(self, name: str, threads: int | None = None, embedder: Embedder | None = None):
        self.name = name
        self.threads = int(threads) if threads is not None else available_cpus()
        if self.threads < 1:
            raise ValueError(f"threads must be >= 1, got {threads}")
        self._embedder = embedder
        self.seconds = 0.0
        self.texts = 0

    @property
    def embedder(self) -> Embedder:
        if self._embedder is None:
            self._embedder = make_embedder(self.name)
        return self._embedder

    @property
    def dim(self) -> int:
        return self.embedder.dim

    def __call__(self, texts: Sequence[str]) -> np.ndarray:
        import torch

        start = time.perf_counter()
        embedder = self.embedder
        previous = torch.get_num_threads()
        torch.set_num_threads(self.threads)
        try:
            return embedder(texts)
        finally:
            torch.set_num_threads(previous)
            self.seconds += time.perf_counter() - start
            self.texts += len(texts)

    def take_counters(self) -> tuple[float, int]:
        """(seconds, texts) since the last call."""
        out = (self.seconds, self.texts)
        self.seconds, self.texts = 0.0, 0
        return out
