"""Do long calls run in parallel? Novelty throughput with 1 vs 2 Python threads.

    python benches/concurrency_bench.py

The archive's own parallelism is pinned to one thread (RAYON_NUM_THREADS=1, set before the
extension loads) so any speed-up comes from two Python threads running novelty at once: the
GIL is released and the archive is behind a read-write lock that lets readers share it.
"""

from __future__ import annotations

import os

os.environ["RAYON_NUM_THREADS"] = "1"

import threading  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

from exit_verl import TaskArchive  # noqa: E402


def throughput(arc: TaskArchive, queries: np.ndarray, threads: int, calls: int) -> float:
    def work() -> None:
        for _ in range(calls):
            arc.novelty(queries, k=8)

    pool = [threading.Thread(target=work) for _ in range(threads)]
    start = time.perf_counter()
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    return threads * calls / (time.perf_counter() - start)


def main() -> None:
    rng = np.random.default_rng(0)
    n, dim = 20_000, 384
    arc = TaskArchive(n, embedding_dim=dim, metric="l2")
    arc.add([b"x"] * n, np.zeros(n), embeddings=rng.normal(size=(n, dim)).astype(np.float32))
    queries = rng.normal(size=(256, dim)).astype(np.float32)
    arc.novelty(queries)  # warm-up
    one = throughput(arc, queries, 1, 6)
    two = throughput(arc, queries, 2, 6)
    cpus = os.cpu_count()
    print(f"novelty of 256 queries over {n} x {dim}, archive pinned to 1 thread, {cpus} cpus")
    print(f"1 thread : {one:6.2f} calls/s")
    print(f"2 threads: {two:6.2f} calls/s  ({two / one:.2f}x)")


if __name__ == "__main__":
    main()
