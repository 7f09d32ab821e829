"""TaskArchive semantics (docs/archive.md): ids, eviction, lineage, errors, novelty."""

import threading

import numpy as np
import pytest

from exit_verl import TaskArchive


def test_ids_sequential_never_reused_and_payloads_roundtrip():
    arc = TaskArchive(3)
    ids = arc.add(["é", b"\x00bytes"], [0.1, 0.2])
    assert ids.dtype == np.uint64 and ids.tolist() == [0, 1]
    assert arc.get(ids) == ["é".encode(), b"\x00bytes"]
    arc.remove([0])
    assert arc.add([b"c", b"d"], [0.3, 0.4]).tolist() == [2, 3]
    assert arc.ids().tolist() == [1, 2, 3]
    assert len(arc) == 3 and 2 in arc and 0 not in arc and -1 not in arc and "x" not in arc


def test_eviction_order_ties_and_self_protection():
    arc = TaskArchive(3)
    arc.add([b"a", b"b", b"c"], [0.5, 0.1, 0.1])
    arc.add([b"d"], [0.9])  # lowest 0.1 tie: smallest id (1) goes
    assert arc.ids().tolist() == [0, 2, 3]
    arc.add([b"e"], [-5.0])  # lowest of all, but not evicted by its own insertion
    assert arc.ids().tolist() == [0, 3, 4]
    arc.add([b"f", b"g"], [-9.0, -1.0])  # 4 (-5) goes, then 5 (-9) goes for 6
    assert arc.ids().tolist() == [0, 3, 6]
    assert arc.stats()["evicted"] == 4


def test_batch_add_equals_one_at_a_time():
    rng = np.random.default_rng(0)
    scores = rng.integers(0, 4, size=40) / 4
    batch, single = TaskArchive(7), TaskArchive(7)
    batch.add([b"x"] * 40, scores)
    for s in scores:
        single.add([b"x"], [s])
    assert batch.ids().tolist() == single.ids().tolist()


def test_not_below_min_admission_rejects_low_scores_but_keeps_ids_and_lineage():
    arc = TaskArchive(3, admission="not_below_min")
    assert arc.config()["admission"] == "not_below_min"
    arc.add([b"a", b"b", b"c"], [0.5, 0.2, 0.2])
    # 0.1 < lowest 0.2: rejected. 0.2 == lowest: enters, evicting the smallest id of the tie
    # (1); 0.3 evicts 2; the last 0.2 ties with the lowest (4) and evicts it.
    ids = arc.add([b"d", b"e", b"f", b"g"], [0.1, 0.2, 0.3, 0.2], parents=[0, 3, -1, 5])
    assert ids.tolist() == [3, 4, 5, 6]
    assert arc.ids().tolist() == [0, 5, 6]  # 4 evicted by 6 (0.2 tie, smaller id)
    stats = arc.stats()
    assert (stats["rejected"], stats["evicted"]) == (1, 3)
    assert 3 not in arc
    with pytest.raises(KeyError):
        arc.get([3])
    with pytest.raises(KeyError):
        arc.info([3])
    # The rejected entry keeps its lineage and can be a parent, inside the batch and later.
    lin = arc.lineage([3, 4, 6])
    assert lin["parent"].tolist() == [0, 3, 5] and lin["root"].tolist() == [0, 0, 5]
    assert lin["depth"].tolist() == [1, 2, 1]
    child = arc.add([b"h"], [9.0], parents=[3])
    assert arc.lineage(child)["depth"].tolist() == [2]
    assert arc.ids().tolist() == [0, 5, 7]
    # One at a time within a batch: 0.4 evicts 5 (0.3), the next 0.4 evicts 8, and 0.35 is
    # then below the lowest (0.4) although it was above the minimum at call start (0.3).
    arc.add([b"i", b"j", b"k"], [0.4, 0.4, 0.35])
    assert arc.ids().tolist() == [0, 7, 9]
    assert arc.stats()["rejected"] == 2


def test_always_admission_is_the_default_and_admits_low_scores():
    arc = TaskArchive(2)
    assert arc.config()["admission"] == "always"
    arc.add([b"a", b"b", b"c"], [0.5, 0.6, 0.1])
    assert arc.ids().tolist() == [1, 2] and arc.stats()["rejected"] == 0


def test_lineage_is_kept_for_evicted_ids():
    arc = TaskArchive(2)
    root = arc.add([b"r"], [0.1])
    child = arc.add([b"c"], [0.2], parents=root)
    grandchild = arc.add([b"g"], [0.3], parents=child)
    assert int(root[0]) not in arc
    lin = arc.lineage(np.concatenate([root, child, grandchild]))
    assert lin["parent"].tolist() == [-1, 0, 1]
    assert lin["root"].tolist() == [0, 0, 0]
    assert lin["depth"].tolist() == [0, 1, 2]
    info = arc.info(grandchild)
    assert info["depth"][0] == 2 and info["root"][0] == 0 and info["parent"][0] == 1
    # A parent may be evicted, or inserted earlier in the same call.
    ids = arc.add([b"x", b"y"], [1.0, 1.0], parents=[0, 3])
    assert arc.lineage(ids)["depth"].tolist() == [1, 2]
    with pytest.raises(KeyError):
        arc.lineage([99])
    with pytest.raises(KeyError):
        arc.info(root)


def test_update_scores_changes_priority_and_eviction():
    arc = TaskArchive(2)
    arc.add([b"a", b"b"], [0.1, 0.9])
    arc.update_scores([0, 1], [0.8, 0.2])
    assert arc.info([0, 1])["score"].tolist() == [0.8, 0.2]
    arc.add([b"c"], [0.5])
    assert arc.ids().tolist() == [0, 2]


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
@pytest.mark.parametrize("k", [1, 8, 500])
def test_novelty_matches_numpy_brute_force(metric, k):
    rng = np.random.default_rng(1)
    rows = rng.normal(size=(300, 16)).astype(np.float32)
    queries = rng.normal(size=(40, 16)).astype(np.float32)
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
    np.testing.assert_array_equal(arc.embeddings([150]), rows[150:151])


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
