"""TaskArchive at the Python boundary: type conversion, dtypes and shapes, error types, novelty
through numpy, threads and panics. The archive's semantics are tested in the crate
(rust/exit-archive/tests)."""

import threading

import numpy as np
import pytest

from exit_verl import TaskArchive


def test_payloads_ids_and_membership_convert_at_the_boundary():
    arc = TaskArchive(3)
    ids = arc.add(["é", b"\x00bytes", "ba"], [0.1, 0.2, 0.3])
    assert ids.dtype == np.uint64 and ids.shape == (3,) and ids.tolist() == [0, 1, 2]
    assert arc.get(ids) == ["é".encode(), b"\x00bytes", b"ba"]  # str is stored as UTF-8
    assert all(type(p) is bytes for p in arc.get(ids))
    # Ids are accepted as lists, numpy arrays of any integer dtype and numpy scalars.
    assert arc.get(np.array([2], np.int8)) == arc.get([np.uint64(2)]) == [b"ba"]
    arc.remove(np.array([0], np.int64))
    assert arc.ids().dtype == np.uint64 and arc.ids().tolist() == [1, 2]
    assert list(arc) == [1, 2] and len(arc) == 2
    assert 2 in arc and np.uint64(2) in arc and 0 not in arc
    for other in (-1, "x", 2.0, None, 2**70):
        assert other not in arc


def test_options_reach_the_core_and_config_reports_them():
    assert TaskArchive(5).config() == {
        "capacity": 5,
        "embedding_dim": None,
        "metric": "cosine",
        "prioritization": "rank",
        "temperature": 1.0,
        "staleness_coef": 0.0,
        "admission": "always",
        "seed": 0,
        "max_payload_bytes": 64 << 20,
    }
    options = {
        "embedding_dim": 4,
        "metric": "l2",
        "prioritization": "softmax",
        "temperature": 0.5,
        "staleness_coef": 0.25,
        "admission": "not_below_min",
        "seed": 11,
        "max_payload_bytes": 100,
    }
    arc = TaskArchive(7, **options)
    assert arc.config() == {"capacity": 7, **options}
    assert (arc.capacity, arc.embedding_dim) == (7, 4)
    assert "admission='not_below_min'" in repr(arc)


def test_seed_reaches_the_core():
    def draws(seed):
        arc = TaskArchive(100, staleness_coef=0.3, seed=seed)
        arc.add([b"x"] * 50, np.linspace(0, 1, 50))
        return np.concatenate([arc.sample(20, step=s) for s in range(1, 6)])

    assert np.array_equal(draws(7), draws(7))
    assert not np.array_equal(draws(7), draws(8))


def test_info_lineage_and_probabilities_columns():
    arc = TaskArchive(2, prioritization="proportional")
    root = arc.add([b"r"], [0.1], step=3)
    child = arc.add([b"c"], [0.2], parents=root, step=4)  # a numpy array as parents
    grandchild = arc.add([b"g"], [0.3], parents=[int(child[0])], step=5)  # evicts the root
    info = arc.info(np.concatenate([child, grandchild]))
    dtypes = {key: column.dtype for key, column in info.items()}
    assert dtypes == {
        "score": np.float64,
        "parent": np.int64,
        "root": np.uint64,
        "depth": np.int64,
        "added_step": np.int64,
        "last_step": np.int64,
        "times_sampled": np.int64,
    }
    assert info["score"].tolist() == [0.2, 0.3] and info["added_step"].tolist() == [4, 5]
    lineage = arc.lineage([0, 1, 2])  # the evicted root too
    assert {key: column.dtype for key, column in lineage.items()} == {
        "parent": np.int64,
        "root": np.uint64,
        "depth": np.int64,
    }
    assert lineage["parent"].tolist() == [-1, 0, 1]  # -1: no parent
    assert lineage["root"].tolist() == [0, 0, 0] and lineage["depth"].tolist() == [0, 1, 2]
    ids, p = arc.probabilities(step=5)
    assert ids.dtype == np.uint64 and p.dtype == np.float64
    assert ids.tolist() == [1, 2]
    np.testing.assert_allclose(p, [0.4, 0.6])
    drawn, payloads = arc.sample_with_payloads(3, step=6)
    assert drawn.dtype == np.uint64 and payloads == arc.get(drawn)


def _snapshot(arc):
    return arc.to_bytes()


@pytest.mark.parametrize(
    "call",
    [
        lambda a: a.add([b"x"], [float("nan")], embeddings=np.ones((1, 3))),
        lambda a: a.add([b"x"], [np.inf], embeddings=np.ones((1, 3))),
        lambda a: a.add([b"x"], [-1.0], embeddings=np.ones((1, 3))),  # proportional
        lambda a: a.add([b"x", b"y"], [1.0], embeddings=np.ones((2, 3))),
        lambda a: a.add([b"x"], [1.0], embeddings=np.ones((1, 4))),
        lambda a: a.add([b"x"], [1.0], embeddings=np.ones((3,))),
        lambda a: a.add([b"x"], [1.0], embeddings=np.zeros((1, 3))),  # cosine needs non-zero
        lambda a: a.add([b"x"], [1.0], embeddings=np.full((1, 3), np.nan)),
        lambda a: a.add([b"x"], [1.0]),  # embeddings required
        lambda a: a.add([1], [1.0], embeddings=np.ones((1, 3))),
        lambda a: a.add(b"x", [1.0], embeddings=np.ones((1, 3))),
        lambda a: a.add([b"x"], ["high"], embeddings=np.ones((1, 3))),
        lambda a: a.add([b"x"], [1.0], parents=[-2], embeddings=np.ones((1, 3))),
        lambda a: a.add([b"x"], [1.0], embeddings=np.ones((1, 3)), step=-1),
        lambda a: a.add([b"x" * 65], [1.0], embeddings=np.ones((1, 3))),  # max_payload_bytes
        lambda a: a.update_scores([0], [np.nan]),
        lambda a: a.update_scores([0, 1], [1.0]),
        lambda a: a.update_scores([0.5], [1.0]),
        lambda a: a.sample(-1, step=5),
        lambda a: a.sample(1, step=4),  # before a resident's last_step
        lambda a: a.remove([0, 0]),
        lambda a: a.novelty(np.ones((2, 4))),
        lambda a: a.novelty(np.ones((2, 6))),  # 12 values, but rows of 6 in a 3-d archive
        lambda a: a.novelty(np.ones((1, 3)), k=0),
        lambda a: a.novelty(np.zeros((1, 3))),
        # Values of another kind are refused, not cast with a loss.
        lambda a: a.add([b"x"], [1.0], parents=[1.9], embeddings=np.ones((1, 3))),
        lambda a: a.add([b"x"], [1.0], parents=[True], embeddings=np.ones((1, 3))),
        lambda a: a.add([b"x"], [1.0], embeddings=np.ones((1, 3)) * (1 + 1j)),
        lambda a: a.add([b"x"], [True], embeddings=np.ones((1, 3))),
        lambda a: a.add([b"x"], ["1.5"], embeddings=np.ones((1, 3))),
        lambda a: a.add([b"x"], np.array([1.0], dtype=object), embeddings=np.ones((1, 3))),
        lambda a: a.add([b"x"], [1.0 + 0j], embeddings=np.ones((1, 3))),
        lambda a: a.update_scores([0], [1j]),
        lambda a: a.novelty(np.ones((1, 3)) * 1j),
        # Sizes beyond the bounds fail before allocating.
        lambda a: a.sample(2**34, step=5),
        lambda a: a.sample(2**61, step=5),
        lambda a: a.sample_with_payloads(2**34, step=5),
    ],
)
def test_bad_input_raises_value_error_and_changes_nothing(call):
    arc = TaskArchive(
        4, embedding_dim=3, prioritization="proportional", max_payload_bytes=64, seed=9
    )
    arc.add([b"a", b"b"], [1.0, 2.0], embeddings=np.eye(3)[:2], step=5)
    before = _snapshot(arc)
    with pytest.raises(ValueError):
        call(arc)
    assert _snapshot(arc) == before


@pytest.mark.parametrize(
    "call",
    [
        lambda a: a.update_scores([0, 7], [1.0, 1.0]),
        lambda a: a.remove([1, 7]),
        lambda a: a.get([7]),
        lambda a: a.info([-1]),
        lambda a: a.add([b"x"], [1.0], parents=[9], embeddings=np.ones((1, 3))),
        lambda a: a.add(
            [b"x"], [1.0], parents=np.array([2**63], np.uint64), embeddings=np.ones((1, 3))
        ),
    ],
)
def test_unknown_ids_raise_key_error_and_change_nothing(call):
    arc = TaskArchive(4, embedding_dim=3, seed=9)
    arc.add([b"a", b"b"], [1.0, 2.0], embeddings=np.eye(3)[:2])
    before = _snapshot(arc)
    with pytest.raises(KeyError):
        call(arc)
    assert _snapshot(arc) == before


@pytest.mark.parametrize(
    "kwargs",
    [
        {"capacity": 0},
        {"capacity": -3},
        {"capacity": 1.5},
        {"capacity": 4, "metric": "manhattan"},
        {"capacity": 4, "prioritization": "fifo"},
        {"capacity": 4, "prioritization": "Softmax"},
        {"capacity": 4, "admission": "never"},
        {"capacity": 4, "admission": None},
        {"capacity": 4, "temperature": 0.0},
        {"capacity": 4, "staleness_coef": 1.5},
        {"capacity": 4, "embedding_dim": 0},
        {"capacity": 4, "embedding_dim": 2**61},
        {"capacity": 4, "embedding_dim": 2**20 + 1},
        {"capacity": 4, "seed": -1},
    ],
)
def test_bad_options_raise_value_error(kwargs):
    capacity = kwargs.pop("capacity")
    with pytest.raises(ValueError):
        TaskArchive(capacity, **kwargs)


def test_empty_archive_cannot_be_sampled():
    with pytest.raises(ValueError):
        TaskArchive(4).sample(1)


def _brute_novelty(rows, queries, k, metric):
    if metric == "cosine":
        r = rows / np.linalg.norm(rows, axis=1, keepdims=True)
        q = queries / np.linalg.norm(queries, axis=1, keepdims=True)
        d = 1.0 - q @ r.T
    else:
        d = np.sqrt(((queries[:, None, :] - rows[None, :, :]) ** 2).sum(-1))
    d.sort(axis=1)
    kk = min(k, rows.shape[0])
    return d[:, :kk].mean(axis=1)


@pytest.mark.parametrize("metric", ["cosine", "l2"])
def test_novelty_takes_numpy_rows_and_matches_numpy(metric):
    rng = np.random.default_rng(1)
    rows = rng.normal(size=(300, 16))  # float64: converted to the core's float32
    queries = rng.normal(size=(40, 16)).astype(np.float32)
    k = 8
    arc = TaskArchive(1000, embedding_dim=16, metric=metric)
    assert np.isinf(arc.novelty(queries, k=k)).all()
    arc.add([b"e"] * 300, np.zeros(300), embeddings=rows)
    got = arc.novelty(queries, k=k)
    assert got.dtype == np.float32 and got.shape == (40,)
    np.testing.assert_allclose(got, _brute_novelty(rows, queries, k, metric), atol=2e-4)
    # Evicted and removed rows no longer count.
    arc.remove(np.arange(100))
    np.testing.assert_allclose(
        arc.novelty(queries, k=k), _brute_novelty(rows[100:], queries, k, metric), atol=2e-4
    )
    stored = arc.embeddings([150])
    assert stored.dtype == np.float32 and stored.shape == (1, 16)
    np.testing.assert_array_equal(stored, rows[150:151].astype(np.float32))


def test_threads_share_one_archive():
    # Capacity above all inserts: a sampled id cannot be evicted before its update.
    arc = TaskArchive(5000, embedding_dim=8, metric="l2", staleness_coef=0.2)
    rng = np.random.default_rng(0)
    arc.add([b"s"], [0.5], embeddings=rng.normal(size=(1, 8)))
    errors = []

    def worker(seed):
        r = np.random.default_rng(seed)
        try:
            for _ in range(200):
                arc.add([b"w"] * 5, r.random(5), embeddings=r.normal(size=(5, 8)))
                ids = arc.sample(4, step=10**6)
                arc.update_scores(ids, r.random(4))
                arc.novelty(r.normal(size=(3, 8)))
        except Exception as e:  # surfaced below
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    stats = arc.stats()
    assert stats["next_id"] == 1 + 4 * 200 * 5
    assert stats["size"] == 4001 and stats["sampled"] == 4 * 200 * 4


def test_sample_with_payloads_never_meets_an_eviction():
    """Threads evict every resident while others sample: the atomic call always returns
    resident payloads (two calls, sample then get, can lose the race)."""
    arc = TaskArchive(8)
    arc.add([b"0"] * 8, np.zeros(8))
    stop = threading.Event()
    errors = []

    def writer():
        r = 0
        while not stop.is_set():
            r += 1
            first = int(arc.stats()["next_id"])
            arc.add([str(first + i).encode() for i in range(8)], np.full(8, float(r)))

    def reader():
        try:
            for _ in range(3000):
                ids, payloads = arc.sample_with_payloads(4)
                for i, p in zip(ids.tolist(), payloads, strict=True):
                    assert p in (str(i).encode(), b"0"), (i, p)
        except Exception as e:  # surfaced below
            errors.append(e)

    threads = [threading.Thread(target=writer)] + [
        threading.Thread(target=reader) for _ in range(2)
    ]
    for t in threads:
        t.start()
    for t in threads[1:]:
        t.join()
    stop.set()
    threads[0].join()
    assert not errors, errors[0]


def test_a_panic_raises_runtime_error_and_leaves_the_archive_unusable():
    arc = TaskArchive(4)
    arc.add([b"a"], [1.0])
    with pytest.raises(RuntimeError, match="panicked"):
        arc._core._panic_for_tests()
    # Not a BaseException-only PanicException: an ordinary `except Exception` catches it.
    for call in (
        lambda: arc.sample(1),
        lambda: arc.add([b"b"], [1.0]),
        lambda: arc.get([0]),
        lambda: len(arc),
        lambda: 0 in arc,
        lambda: arc.to_bytes(),
        lambda: arc.config(),
        lambda: arc.novelty(np.ones((1, 3))),
    ):
        with pytest.raises(RuntimeError, match="unusable"):
            call()
