"""The diversity-bonus embedder as it runs in verl's task runner: its device, threads, time.

verl's `TaskRunnerV1` is a Ray actor started without `num_cpus`, and Ray sets
OMP_NUM_THREADS=1 for such actors, so torch (and a CPU embedder with it) would run on one
thread there. `TimedEmbedder` raises torch's thread count for the duration of each call,
restores it after, and adds up the seconds spent, which the trainer reports per step
(`timing_s/exit_embed`). The device is `exit.embed_device`: "auto" takes a GPU only when Ray
gave verl's task runner one (verl starts it without, so by default the embedder stays off the
GPUs the actor and rollout use).
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


def resolve_device(device: str) -> str:
    """`device`, with "auto" resolved: "cuda" when this process is a Ray worker holding a GPU
    that torch sees, else "cpu"."""
    if device != "auto":
        return device
    import torch

    if not torch.cuda.is_available():
        return "cpu"
    try:
        import ray

        if ray.is_initialized() and ray.get_gpu_ids():
            return "cuda"
    except Exception:  # noqa: BLE001 - not in a Ray worker: no GPU of our own
        pass
    return "cpu"


class TimedEmbedder:
    """Wraps `make_embedder(name)` (created on first use) with a device and a thread count."""

    def __init__(
        self,
        name: str,
        threads: int | None = None,
        embedder: Embedder | None = None,
        device: str = "auto",
        allow_download: bool = False,
    ):
        self.name = name
        self.threads = int(threads) if threads is not None else available_cpus()
        if self.threads < 1:
            raise ValueError(f"threads must be >= 1, got {threads}")
        self.device = device
        self.allow_download = allow_download
        self._embedder = embedder
        self.seconds = 0.0
        self.texts = 0

    @property
    def embedder(self) -> Embedder:
        if self._embedder is None:
            self._embedder = make_embedder(
                self.name, device=resolve_device(self.device), allow_download=self.allow_download
            )
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
