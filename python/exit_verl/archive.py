"""`TaskArchive`: the prioritized task archive (Rust core) with numpy in and out.

A thin wrapper: it documents the contract and forwards every call. The extension converts
types (array-likes to arrays of the core's dtypes) and the Rust core checks every value, once;
all work happens in Rust, with the GIL released for the long calls.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from exit_verl._archive import LINEAGE_BYTES_PER_ID, ArchiveCore

__all__ = ["LINEAGE_BYTES_PER_ID", "TaskArchive"]

# Lists scanned per query by approximate novelty; see TaskArchive.novelty_recall.
DEFAULT_NPROBE = 8


class TaskArchive:
    """Prioritized archive of opaque payloads with scores, lineage and embeddings.

    Sampling (see the exit-archive crate docs for the exact formulas): rank, proportional or
    softmax (``exp(score / temperature)``) priority, mixed with PLR staleness by
    ``staleness_coef``; draws are i.i.d. with replacement from the distribution at call start.
    With ``admission="always"`` a full archive evicts its lowest score (ties: smallest id) on
    each insertion, and the entry being inserted is never evicted by its own insertion; with
    ``"not_below_min"`` (the ExIt paper's rule) an entry scoring below the lowest resident is
    rejected instead: it gets an id and lineage but never becomes resident
    (``stats()["rejected"]`` counts them). Ids count up from 0 and are never reused. Errors:
    malformed input raises ValueError, an unknown id raises KeyError, and a failed call
    changes nothing. Every method may be called from several threads. Should an operation
    ever panic inside the Rust core (a bug), it raises RuntimeError and the archive refuses
    every later call (its state may be half updated): reload it from a snapshot.
    """

    __slots__ = ("_core",)

    def __init__(
        self,
        capacity: int,
        *,
        embedding_dim: int | None = None,
        metric: str = "cosine",
        prioritization: str = "rank",
        temperature: float = 1.0,
        staleness_coef: float = 0.0,
        admission: str = "always",
        seed: int = 0,
        max_payload_bytes: int = 64 << 20,
    ) -> None:
        self._core = ArchiveCore(
            capacity,
            embedding_dim,
            metric,
            prioritization,
            temperature,
            staleness_coef,
            admission,
            seed,
            max_payload_bytes,
        )

    @classmethod
    def _wrap(cls, core: ArchiveCore) -> TaskArchive:
        obj = cls.__new__(cls)
        obj._core = core
        return obj

    # -- mutation -------------------------------------------------------------------------

    def add(
        self,
        payloads: Sequence[bytes | str],
        scores: Any,
        *,
        parents: Any = None,
        embeddings: Any = None,
        step: int = 0,
    ) -> np.ndarray:
        """Insert entries (as if one at a time) and return their ids (uint64)."""
        return self._core.add(payloads, scores, parents, embeddings, step)

    def update_scores(self, ids: Any, scores: Any) -> None:
        """Set new scores of resident ids (repeated ids apply in order)."""
        self._core.update_scores(ids, scores)

    def sample(self, k: int, *, step: int = 0) -> np.ndarray:
        """Draw k ids i.i.d. with replacement; marks them sampled at ``step``."""
        return self._core.sample(k, step)

    def sample_with_payloads(self, k: int, *, step: int = 0) -> tuple[np.ndarray, list[bytes]]:
        """``sample`` and the payloads of the drawn ids in one atomic call: no concurrent
        eviction can come between the draw and the read (``get(sample(k))`` in two calls
        can raise KeyError when another thread adds in between)."""
        return self._core.sample_with_payloads(k, step)

    def remove(self, ids: Any) -> None:
        """Remove resident ids (their lineage is kept)."""
        self._core.remove(ids)

    # -- queries --------------------------------------------------------------------------

    def get(self, ids: Any) -> list[bytes]:
        return self._core.get(ids)

    def info(self, ids: Any) -> dict[str, np.ndarray]:
        """score, parent (-1: none), root, depth, added_step, last_step, times_sampled."""
        return self._core.info(ids)

    def lineage(self, ids: Any) -> dict[str, np.ndarray]:
        """parent (-1: none), root and depth of any id ever inserted, evicted ones too."""
        return self._core.lineage(ids)

    def forget_lineage(self, before: int | None = None) -> int:
        """Drops lineage records of ids below ``min(before, oldest resident id)``.

        The lineage log grows by ``LINEAGE_BYTES_PER_ID`` (24) bytes per id ever inserted; a
        long run can call this now and then to bound it. Returns the new floor: ids below it
        raise KeyError in ``lineage`` and cannot be parents. Residents are untouched.
        """
        if before is None:
            return self._core.forget_lineage()
        return self._core.forget_lineage(before)

    def embeddings(self, ids: Any) -> np.ndarray:
        """Stored embeddings of resident ids, shape (len(ids), embedding_dim)."""
        return self._core.embeddings(ids)

    def novelty(
        self,
        queries: Any,
        k: int = 8,
        *,
        approximate: bool = False,
        nprobe: int = DEFAULT_NPROBE,
        nlist: int | None = None,
    ) -> np.ndarray:
        """Mean distance of each query to its min(k, n) nearest residents (inf when none).

        Exact by default (a blocked matrix-product scan). ``approximate=True`` searches an
        IVF index (built on first use, about 4·sqrt(n) lists or ``nlist``, kept in sync with
        inserts and evictions) scanning the ``nprobe`` nearest lists; check its quality on
        your data with :meth:`novelty_recall`.
        """
        if not approximate:
            return self._core.novelty(queries, k)
        return self._core.novelty_approx(queries, k, nprobe, nlist)

    def novelty_recall(
        self, queries: Any, k: int = 8, *, nprobe: int = DEFAULT_NPROBE, nlist: int | None = None
    ) -> float:
        """Recall@k of the approximate search against the exact one on these queries (an
        empty archive raises ValueError)."""
        recall, _ = self._core.novelty_recall(queries, k, nprobe, nlist)
        return float(recall)

    def probabilities(self, step: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """(ids ascending, probability of each) that ``sample(step=step)`` would use."""
        return self._core.probabilities(step)

    def ids(self) -> np.ndarray:
        """Resident ids, ascending."""
        return self._core.ids()

    def stats(self) -> dict[str, Any]:
        return self._core.stats()

    def __len__(self) -> int:
        return len(self._core)

    def __contains__(self, id: object) -> bool:
        return self._core.contains(id)

    def __iter__(self) -> Iterator[int]:
        return iter(self.ids().tolist())

    @property
    def capacity(self) -> int:
        return self._core.config()["capacity"]

    @property
    def embedding_dim(self) -> int | None:
        return self._core.config()["embedding_dim"]

    def config(self) -> dict[str, Any]:
        """The constructor options."""
        return self._core.config()

    def __repr__(self) -> str:
        c = self._core.config()
        return (
            f"TaskArchive(size={len(self)}, capacity={c['capacity']}, "
            f"prioritization={c['prioritization']!r}, admission={c['admission']!r}, "
            f"embedding_dim={c['embedding_dim']})"
        )

    # -- persistence ----------------------------------------------------------------------

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write a snapshot atomically (temp file, fsync, rename)."""
        self._core.save(os.fspath(path))

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> TaskArchive:
        """Read a snapshot; a truncated, corrupted or foreign file raises ValueError."""
        return cls._wrap(ArchiveCore.load(os.fspath(path)))

    def to_bytes(self) -> bytes:
        """The snapshot as bytes (same format as ``save``)."""
        return self._core.to_bytes()

    @classmethod
    def from_bytes(cls, data: bytes) -> TaskArchive:
        return cls._wrap(ArchiveCore.from_bytes(data))

    def __reduce__(self) -> tuple[Any, tuple[bytes]]:
        # Lets Ray and multiprocessing ship archives; the payload is our own snapshot format.
        return (TaskArchive.from_bytes, (self.to_bytes(),))
