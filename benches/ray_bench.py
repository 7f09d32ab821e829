"""Per-call overhead of the Ray-hosted archive (ArchiveActor) against the in-process archive.

    python benches/ray_bench.py [--calls 300]

Prints ms per call for small calls (sample 1, update 1) and batched ExIt-step calls (sample 512,
update 512, add 4096 with 64-d embeddings), in process and through the actor, and the ratio.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import numpy as np
import ray

from exit_verl import TaskArchive
from exit_verl.distributed import ArchiveActor


def timed(fn, reps: int) -> float:
    fn()
    samples = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t)
    return statistics.median(samples) * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=300)
    args = parser.parse_args()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    n, dim = 100_000, 64
    rng = np.random.default_rng(0)
    payloads = [b"x" * 64] * n
    scores = rng.random(n)
    emb = rng.normal(size=(n, dim)).astype(np.float32)
    local = TaskArchive(n, embedding_dim=dim, metric="l2", staleness_coef=0.1)
    local.add(payloads, scores, embeddings=emb)
    actor = ArchiveActor.remote(n, embedding_dim=dim, metric="l2", staleness_coef=0.1)
    ray.get(actor.add.remote(payloads, scores, embeddings=emb))
    children = [b"c" * 64] * 4096
    child_emb = rng.normal(size=(4096, dim)).astype(np.float32)
    step = [0]

    def local_step() -> None:
        step[0] += 1
        ids = local.sample(512, step=step[0])
        local.update_scores(ids, rng.random(512))
        local.add(children, rng.random(4096), embeddings=child_emb, step=step[0])

    def actor_step() -> None:
        step[0] += 1
        ids = ray.get(actor.sample.remote(512, step=step[0]))
        ray.get(actor.update_scores.remote(ids, rng.random(512)))
        ray.get(actor.add.remote(children, rng.random(4096), embeddings=child_emb, step=step[0]))

    def local_one() -> None:
        local.sample(1, step=step[0])

    def actor_one() -> None:
        ray.get(actor.sample.remote(1, step=step[0]))

    rows = [
        ("sample(1)", timed(local_one, args.calls), timed(actor_one, args.calls)),
        ("ExIt step (512/512/4096)", timed(local_step, 30), timed(actor_step, 30)),
    ]
    version = sys.version.split()[0]
    print(f"archive of {n} entries, d={dim}; python {version}; ray {ray.__version__}")
    print(f"{'call':28} {'in-process ms':>14} {'actor ms':>10} {'actor/local':>12}")
    for name, a, b in rows:
        print(f"{name:28} {a:14.3f} {b:10.3f} {b / a:11.1f}x")
    ray.shutdown()


if __name__ == "__main__":
    main()
