"""`TaskArchive`: the prioritized task archive (Rust core) with numpy in and out.

This wrapper only normalizes inputs (array-likes to contiguous arrays of the core's dtypes,
clear errors for wrong types) and documents the contract; all work happens in Rust, with the
GIL released for the long calls.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from exit_verl._archive import LINEAGE_BYTES_PER_ID, ArchiveCore

__all__ = ["LINEAGE_BYTES_PER_ID", "TaskArchive"]

_U64 = np.dtype(np.uint64)
# Lists scanned per query by approximate novelty; see TaskArchive.novelty_recall.
DEFAULT_NPROBE = 8


def _ids(ids: Any) -> np.ndarray:
    if type(ids) is np.ndarray and ids.dtype == _U64 and ids.ndim == 1 and ids.flags.c_contiguous:
        return ids
    if isinstance(ids, (int, np.integer)):
        raise ValueError("ids must be a 1-D sequence of integers, got a scalar")
    arr = np.asarray(ids)
    if arr.ndim != 1:
        raise ValueError(f"ids must be 1-D, got shape {arr.shape}")
    if arr.size == 0:
        return np.empty(0, dtype=np.uint64)
    if arr.dtype.kind not in "iu":
        raise ValueError(f"ids must be integers, got dtype {arr.dtype}")
    if arr.dtype.kind == "i" and arr.min() < 0:
        raise KeyError(int(arr.min()))
    return np.ascontiguousarray(arr, dtype=np.uint64)


def _vector(values: Any, dtype: Any, name: str, length: int | None = None) -> np.ndarray:
    try:
        arr = np.asarray(values)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{name} must be a 1-D numeric array: {e}") from None
    if arr.dtype.kind not in "biuf" and arr.size:
        raise ValueError(f"{name} must be numeric, got dtype {arr.dtype}")
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {arr.shape}")
    if length is not None and arr.shape[0] != length:
        raise ValueError(f"{name} must have length {length}, got {arr.shape[0]}")
    return np.ascontiguousarray(arr, dtype=dtype)


def _matrix(values: Any, name: str, rows: int | None = None) -> np.ndarray:
    try:
        arr = np.asarray(values)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{name} must be a 2-D float array: {e}") from None
    if arr.dtype.kind not in "biuf" and arr.size:
        raise ValueError(f"{name} must be numeric, got dtype {arr.dtype}")
    if arr.ndim != 2:
        raise ValueError(f"{name} must be 2-D, got shape {arr.shape}")
    if rows is not None and arr.shape[0] != rows:
        raise ValueError(f"{name} must have {rows} rows, got {arr.shape[0]}")
    return np.ascontiguousarray(arr, dtype=np.float32)


def _int(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{name} must be an integer, got {type(value).__name__}")
    return int(value)


def _queries(queries: Any) -> np.ndarray:
    q = np.asarray(queries)
    if q.ndim == 1:
        q = q.reshape(1, -1)
    return _matrix(q, "queries")


def _nlist(nlist: int | None) -> int | None:
    if nlist is None:
        return None
    n = _int(nlist, "nlist")
    if n < 1:
        raise ValueError(f"nlist must be >= 1, got {n}")
    return n


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
    changes nothing. Every method may be called from several threads.
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
        capacity = _int(capacity, "capacity")
        if embedding_dim is not None:
            embedding_dim = _int(embedding_dim, "embedding_dim")
        seed = _int(seed, "seed")
        if not 0 <= seed < 2**64:
            raise ValueError(f"seed must be in [0, 2**64), got {seed}")
        self._core = ArchiveCore(
            capacity,
            embedding_dim,
            str(metric),
            str(prioritization),
            float(temperature),
            float(staleness_coef),
            str(admission),
            seed,
            _int(max_payload_bytes, "max_payload_bytes"),
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
        if isinstance(payloads, (bytes, str, bytearray)):
            raise ValueError("payloads must be a sequence of bytes or str, not a single value")
        payloads = list(payloads)
        n = len(payloads)
        scores = _vector(scores, np.float64, "scores", n)
        if parents is not None:
            parents = _vector(parents, np.int64, "parents", n)
        if embeddings is not None:
            embeddings = _matrix(embeddings, "embeddings", n)
        return self._core.add(payloads, scores, parents, embeddings, _int(step, "step"))

    def update_scores(self, ids: Any, scores: Any) -> None:
        """Set new scores of resident ids (repeated ids apply in order)."""
        ids = _ids(ids)
        self._core.update_scores(ids, _vector(scores, np.float64, "scores", len(ids)))

    def sample(self, k: int, *, step: int = 0) -> np.ndarray:
        """Draw k ids i.i.d. with replacement; marks them sampled at ``step``."""
        return self._core.sample(_int(k, "k"), _int(step, "step"))

    def remove(self, ids: Any) -> None:
        """Remove resident ids (their lineage is kept)."""
        self._core.remove(_ids(ids))

    # -- queries --------------------------------------------------------------------------

    def get(self, ids: Any) -> list[bytes]:
        return self._core.get(_ids(ids))

    def info(self, ids: Any) -> dict[str, np.ndarray]:
        """score, parent (-1: none), root, depth, added_step, last_step, times_sampled."""
        return self._core.info(_ids(ids))

    def lineage(self, ids: Any) -> dict[str, np.ndarray]:
        """parent (-1: none), root and depth of any id ever inserted, evicted ones too."""
        return self._core.lineage(_ids(ids))

    def forget_lineage(self, before: int | None = None) -> int:
        """Drops lineage records of ids below ``min(before, oldest resident id)``.

        The lineage log grows by ``LINEAGE_BYTES_PER_ID`` (24) bytes per id ever inserted; a
        long run can call this now and then to bound it. Returns the new floor: ids below it
        raise KeyError in ``lineage`` and cannot be parents. Residents are untouched.
        """
        floor = np.iinfo(np.uint64).max if before is None else _int(before, "before")
        if floor < 0:
            raise ValueError(f"before must be >= 0, got {floor}")
        return self._core.forget_lineage(floor)

    def embeddings(self, ids: Any) -> np.ndarray:
        """Stored embeddings of resident ids, shape (len(ids), embedding_dim)."""
        return self._core.embeddings(_ids(ids))

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
        q = _queries(queries)
        if not approximate or len(self) == 0:
            return self._core.novelty(q, _int(k, "k"))
        return self._core.novelty_approx(q, _int(k, "k"), _int(nprobe, "nprobe"), _nlist(nlist))

    def novelty_recall(
        self, queries: Any, k: int = 8, *, nprobe: int = DEFAULT_NPROBE, nlist: int | None = None
    ) -> float:
        """Recall@k of the approximate search against the exact one on these queries."""
        if len(self) == 0:
            raise ValueError("novelty_recall needs a non-empty archive")
        recall, _ = self._core.novelty_recall(
            _queries(queries), _int(k, "k"), _int(nprobe, "nprobe"), _nlist(nlist)
        )
        return float(recall)

    def probabilities(self, step: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """(ids ascending, probability of each) that ``sample(step=step)`` would use."""
        return self._core.probabilities(_int(step, "step"))

    def ids(self) -> np.ndarray:
        """Resident ids, ascending."""
        return self._core.ids()

    def stats(self) -> dict[str, Any]:
        return self._core.stats()

    def __len__(self) -> int:
        return len(self._core)

    def __contains__(self, id: object) -> bool:
        if isinstance(id, bool) or not isinstance(id, (int, np.integer)):
            return False
        return 0 <= int(id) < 2**64 and self._core.contains(int(id))

    def __iter__(self) -> Iterable[int]:
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
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise ValueError(f"from_bytes needs bytes, got {type(data).__name__}")
        return cls._wrap(ArchiveCore.from_bytes(bytes(data)))

    def __reduce__(self) -> tuple[Any, tuple[bytes]]:
        # Lets Ray and multiprocessing ship archives; the payload is our own snapshot format.
        return (TaskArchive.from_bytes, (self.to_bytes(),))
