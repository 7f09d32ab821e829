"""`ArchiveActor`: one TaskArchive hosted in a Ray actor, shared by many processes.

verl's single controller keeps the curriculum (and its archive) in the driver, which is all
ExIt needs. Use the actor when several processes must read and write the same archive — for
example rollout or reward workers adding children directly, several trainers sharing one
curriculum, or an evaluation job sampling a live archive. Batches travel as numpy arrays
through Ray's object store; every call is one round trip (see benches/ray_bench.py for the
per-call overhead), so batch your calls.

    import ray
    from exit_verl.distributed import ArchiveActor
    archive = ArchiveActor.remote(4096, staleness_coef=0.1, name="exit-archive")
    ids = ray.get(archive.add.remote(payloads, scores, step=3))
    same = ray.get_actor("exit-archive")  # from any other process of the cluster

Method calls run one at a time in the actor by default; pass `max_concurrency > 1` to let
long calls such as novelty overlap. Each method is one call of the thread-safe archive, so it
is atomic either way (`sample_with_payloads` included).
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from exit_verl.archive import TaskArchive


class ArchiveHost:
    """The object living inside the actor: a TaskArchive with the same method names."""

    def __init__(self, capacity: int | None = None, *, snapshot: str | None = None, **kwargs):
        if (capacity is None) == (snapshot is None):
            raise ValueError("give either a capacity or a snapshot path")
        self.archive = TaskArchive.load(snapshot) if snapshot else TaskArchive(capacity, **kwargs)

    def add(self, payloads: Any, scores: Any, **kwargs: Any) -> np.ndarray:
        return self.archive.add(payloads, scores, **kwargs)

    def update_scores(self, ids: Any, scores: Any) -> None:
        self.archive.update_scores(ids, scores)

    def sample(self, k: int, *, step: int = 0) -> np.ndarray:
        return self.archive.sample(k, step=step)

    def sample_with_payloads(self, k: int, *, step: int = 0) -> tuple[np.ndarray, list[bytes]]:
        """Sample and fetch in one round trip, atomically (no eviction in between, also with
        `max_concurrency > 1`)."""
        return self.archive.sample_with_payloads(k, step=step)

    def get(self, ids: Any) -> list[bytes]:
        return self.archive.get(ids)

    def info(self, ids: Any) -> dict[str, np.ndarray]:
        return self.archive.info(ids)

    def lineage(self, ids: Any) -> dict[str, np.ndarray]:
        return self.archive.lineage(ids)

    def novelty(self, queries: Any, k: int = 8, **kwargs: Any) -> np.ndarray:
        return self.archive.novelty(queries, k, **kwargs)

    def probabilities(self, step: int = 0) -> tuple[np.ndarray, np.ndarray]:
        return self.archive.probabilities(step)

    def remove(self, ids: Any) -> None:
        self.archive.remove(ids)

    def ids(self) -> np.ndarray:
        return self.archive.ids()

    def size(self) -> int:
        return len(self.archive)

    def stats(self) -> dict[str, Any]:
        return self.archive.stats()

    def save(self, path: str | os.PathLike[str]) -> None:
        """Writes the snapshot on the actor's node."""
        self.archive.save(path)

    def to_bytes(self) -> bytes:
        return self.archive.to_bytes()


class _ActorFactory:
    """`ArchiveActor.remote(...)` creates the Ray actor; Ray is imported only here."""

    def remote(
        self,
        capacity: int | None = None,
        *,
        snapshot: str | None = None,
        name: str | None = None,
        max_concurrency: int = 1,
        num_cpus: float = 0,
        **archive_kwargs: Any,
    ) -> Any:
        import ray

        if (capacity is None) == (snapshot is None):
            raise ValueError("give either a capacity or a snapshot path")
        if capacity is not None:
            TaskArchive(capacity, **archive_kwargs)  # bad options fail here, not in the actor
        if max_concurrency < 1:
            raise ValueError(f"max_concurrency must be >= 1, got {max_concurrency}")
        cls = ray.remote(ArchiveHost)
        options: dict[str, Any] = {"max_concurrency": max_concurrency, "num_cpus": num_cpus}
        if name is not None:
            options["name"] = name
        return cls.options(**options).remote(capacity, snapshot=snapshot, **archive_kwargs)


ArchiveActor = _ActorFactory()
