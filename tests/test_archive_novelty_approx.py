"""Approximate (IVF) novelty through Python: the options reach the index the bindings keep, the
index follows inserts and evictions, bad arguments raise ValueError. The index's own
properties (partial probes, recall) are tested in the crate."""

from __future__ import annotations

import numpy as np
import pytest

from exit_verl import TaskArchive


def clustered(rng: np.random.Generator, n: int, dim: int = 16, centres: int = 30) -> np.ndarray:
    c = rng.standard_normal((centres, dim))
    x = c[rng.integers(0, centres, n)] + 0.4 * rng.standard_normal((n, dim))
    return x.astype(np.float32)


@pytest.mark.parametrize("metric", ["l2", "cosine"])
def test_full_probe_equals_exact_and_nlist_rebuilds_the_index(metric: str) -> None:
    rng = np.random.default_rng(0)
    arc = TaskArchive(1000, embedding_dim=16, metric=metric)
    arc.add([b"x"] * 1000, np.zeros(1000), embeddings=clustered(rng, 1000))
    q = clustered(rng, 100).astype(np.float64)  # converted to float32 at the boundary
    exact = arc.novelty(q, k=8)
    full = arc.novelty(q, k=8, approximate=True, nprobe=20, nlist=20)
    assert full.dtype == np.float32 and full.shape == (100,)
    np.testing.assert_allclose(full, exact, rtol=1e-4, atol=1e-5)
    assert arc.novelty_recall(q, k=8, nprobe=20, nlist=20) == 1.0
    # Probing 5 of 20 lists misses neighbours; another nlist rebuilds the index, and
    # probing all of its 5 lists is exact again.
    assert arc.novelty_recall(q, k=8, nprobe=5, nlist=20) < 1.0
    assert arc.novelty_recall(q, k=8, nprobe=5, nlist=5) == 1.0


def test_index_follows_inserts_and_evictions() -> None:
    rng = np.random.default_rng(1)
    arc = TaskArchive(500, embedding_dim=8, metric="l2")
    arc.add([b"a"] * 500, np.zeros(500), embeddings=clustered(rng, 500, 8))
    q = clustered(rng, 40, 8)
    arc.novelty(q, approximate=True, nlist=10)  # builds the index
    far = np.full((200, 8), 50.0, dtype=np.float32) + rng.standard_normal((200, 8)).astype(
        np.float32
    )
    arc.add([b"b"] * 200, np.ones(200), embeddings=far)  # evicts 200 of the first entries
    np.testing.assert_allclose(
        arc.novelty(q, approximate=True, nprobe=10, nlist=10), arc.novelty(q), rtol=1e-4
    )
    near_far = far[:5] + 0.01
    assert (arc.novelty(near_far, k=4, approximate=True, nprobe=10, nlist=10) < 5).all()


def test_empty_and_bad_arguments() -> None:
    arc = TaskArchive(10, embedding_dim=4)
    q = np.ones((2, 4), dtype=np.float32)
    assert np.isinf(arc.novelty(q, approximate=True)).all()
    with pytest.raises(ValueError):
        arc.novelty_recall(q)
    arc.add([b"x"] * 3, [0.1, 0.2, 0.3], embeddings=np.eye(3, 4, dtype=np.float32) + 0.1)
    with pytest.raises(ValueError):
        arc.novelty(q, approximate=True, nprobe=0)
    with pytest.raises(ValueError):
        arc.novelty(q, approximate=True, nlist=0)
    with pytest.raises(ValueError):
        arc.novelty(np.ones((2, 5), dtype=np.float32), approximate=True)
    with pytest.raises(ValueError):
        TaskArchive(10).novelty(q, approximate=True)  # no embeddings in this archive
