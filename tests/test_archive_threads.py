"""Concurrency: 8 threads mixing every call for 30 s (300 s opt-in), and proof that long calls
drop the GIL."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
from deps import OPT_IN

from exit_verl import TaskArchive

DIM = 16
SECONDS = 300.0 if OPT_IN else 30.0  # the opt-in run stresses ten times longer


@pytest.mark.slow
def test_eight_threads_mixing_calls(tmp_path) -> None:
    arc = TaskArchive(1_000_000, embedding_dim=DIM, metric="l2", staleness_coef=0.2, seed=3)
    arc.add([b"seed"] * 64, np.ones(64), embeddings=np.ones((64, DIM), np.float32))
    step_lock = threading.Lock()  # steps only move forward, as the contract requires
    step = [0]
    errors: list[BaseException] = []
    written: list[dict[int, tuple[bytes, float]]] = [{} for _ in range(8)]
    deadline = time.monotonic() + SECONDS

    def worker(t: int) -> None:
        rng = np.random.default_rng(t)
        mine = written[t]
        calls = 0
        try:
            while time.monotonic() < deadline:
                op = calls % 5
                calls += 1
                if op == 0:
                    n = int(rng.integers(1, 20))
                    payloads = [f"t{t}-{calls}-{i}".encode() for i in range(n)]
                    scores = rng.random(n)
                    emb = rng.normal(size=(n, DIM)).astype(np.float32)
                    ids = arc.add(payloads, scores, embeddings=emb, step=0)
                    for i, p, s in zip(ids.tolist(), payloads, scores, strict=True):
                        mine[i] = (p, float(s))
                elif op == 1:
                    with step_lock:  # sample(step) must not go behind a concurrent sample
                        step[0] += 1
                        drawn = arc.sample(8, step=step[0])
                    assert len(drawn) == 8
                elif op == 2 and mine:
                    ids = rng.choice(list(mine), size=min(10, len(mine)), replace=False)
                    scores = rng.random(len(ids))
                    arc.update_scores(ids, scores)
                    for i, s in zip(ids.tolist(), scores, strict=True):
                        mine[i] = (mine[i][0], float(s))
                elif op == 3:
                    q = rng.normal(size=(32, DIM)).astype(np.float32)
                    assert np.isfinite(arc.novelty(q, k=4)).all()
                else:
                    path = tmp_path / f"t{t}.snap"
                    arc.save(path)
                    assert len(TaskArchive.load(path)) >= 64
                    with step_lock:
                        ids, probs = arc.probabilities(step=step[0])
                    assert abs(probs.sum() - 1.0) < 1e-9 and len(ids) == len(probs)
        except BaseException as e:  # surfaced in the main thread
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(SECONDS + 120)
        assert not th.is_alive(), "a thread is stuck: deadlock"
    assert not errors, errors[0]

    # No lost insert or update: each id holds what its (only) writer last wrote.
    every = {i: v for mine in written for i, v in mine.items()}
    assert len(every) == sum(len(m) for m in written)  # ids never handed out twice
    ids = sorted(every)
    assert set(ids) <= set(arc.ids().tolist())
    assert arc.get(ids) == [every[i][0] for i in ids]
    np.testing.assert_array_equal(arc.info(ids)["score"], [every[i][1] for i in ids])
    assert len(arc) == 64 + len(ids)


def test_long_calls_release_the_gil() -> None:
    """While a long novelty call runs in one thread, another thread keeps executing Python."""
    rng = np.random.default_rng(0)
    arc = TaskArchive(200_000, embedding_dim=64, metric="l2")
    arc.add([b"x"] * 200_000, np.zeros(200_000), embeddings=rng.normal(size=(200_000, 64)))
    queries = rng.normal(size=(512, 64)).astype(np.float32)
    ticks = [0]
    stop = threading.Event()

    def ticker() -> None:
        while not stop.is_set():
            ticks[0] += 1

    th = threading.Thread(target=ticker)
    th.start()
    try:
        before = ticks[0]
        arc.novelty(queries, k=8)
        during = ticks[0] - before
    finally:
        stop.set()
        th.join()
    # Holding the GIL for the whole call would leave the ticker at most one switch interval.
    assert during > 1000, during
