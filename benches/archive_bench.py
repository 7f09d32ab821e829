"""TaskArchive against outside anchors, all measured in this one process and run.

    python benches/archive_bench.py [--quick] [--only step,novelty,...] [--json out.json]

Sections (see benches/README.md): step (the ExIt step vs a numpy archive and cpprb),
novelty (vs faiss IndexFlatL2 and hnswlib), memory (RSS vs raw bytes, in a fresh subprocess),
snapshot (save/load vs np.save/np.load) and small (one-element calls). Tables go to stdout,
progress to stderr. Needs the `bench` extra: cpprb, faiss-cpu, hnswlib, psutil.
"""

from __future__ import annotations

import argparse
import ctypes
import datetime as dt
import gc
import itertools
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import timeit
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from naive_archive import NaiveNumpyArchive  # noqa: E402
from numpy_archive import NumpyArchive  # noqa: E402
from topn_archive import TopNumpyArchive  # noqa: E402

from exit_verl import TaskArchive  # noqa: E402

SECTIONS = ("step", "novelty", "minilm", "memory", "snapshot", "small")
SAMPLE, CHILDREN, PAYLOAD_SMALL, PAYLOAD_BIG, DIM, K = 512, 4096, 64, 1024, 384, 8
# The paper's operating point: an archive of 512 tasks, 128 prompts x 8 rollouts a step.
PAPER_N, PAPER_SAMPLE, PAPER_CHILDREN = 512, 128, 1024
PAPER = "paper"
THREADS = os.cpu_count() or 1


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def median_ms(fn: Callable[[], Any], reps: int, budget_s: float, warmup: int = 2) -> float:
    """Median wall time of fn in ms: `warmup` untimed calls, then up to `reps` timed calls
    (at least 3) stopping early once `budget_s` seconds are spent."""
    for _ in range(warmup):
        fn()
    times: list[float] = []
    spent = 0.0
    while len(times) < reps and (len(times) < 3 or spent < budget_s):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
        spent += times[-1]
    return 1e3 * statistics.median(times)


def table(title: str, header: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    line = "  ".join
    print(f"\n## {title}")
    print(line(h.ljust(w) for h, w in zip(header, widths, strict=True)))
    print(line("-" * w for w in widths))
    for r in rows:
        print(
            line(
                c.rjust(w) if i else c.ljust(w)
                for i, (c, w) in enumerate(zip(r, widths, strict=True))
            )
        )
    sys.stdout.flush()


def machine_info() -> dict[str, Any]:
    model = "unknown"
    try:
        for text in Path("/proc/cpuinfo").read_text().splitlines():
            if text.startswith("model name"):
                model = text.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "cpus": os.cpu_count(),
        "cpu_model": model,
        "python": platform.python_version(),
        "numpy": np.__version__,
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "load_average": " ".join(f"{x:.2f}" for x in os.getloadavg()),
    }


def payload_pool(size: int, count: int, seed: int) -> list[bytes]:
    raw = np.random.default_rng(seed).bytes(size * count)
    return [raw[i * size : (i + 1) * size] for i in range(count)]


def unit_vectors(n: int, seed: int) -> np.ndarray:
    x = np.random.default_rng(seed).standard_normal((n, DIM), dtype=np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x


def clustered_unit_vectors(n: int, seed: int, centres: int = 1000) -> np.ndarray:
    """Unit vectors around 1000 shared centres (noise half the centre scale per dimension):
    closer to sentence embeddings, which cluster by topic, than uniform random directions,
    the worst case for any approximate index."""
    c = np.random.default_rng(0).standard_normal((centres, DIM), dtype=np.float32)
    rng = np.random.default_rng(seed)
    x = c[rng.integers(0, centres, n)] + 0.5 * rng.standard_normal((n, DIM), dtype=np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x


VECTORS = {"random": unit_vectors, "clustered": clustered_unit_vectors}


# -- 1. ExIt step -------------------------------------------------------------------------


class StepInputs:
    """Fresh scores every step (~20 µs for all implementations alike): reused score values
    would create ties, which take the slower tie-breaking paths. A step samples `sample`
    prompts and adds `children` children (an equal number per sampled prompt)."""

    def __init__(self, sample: int = SAMPLE, children: int = CHILDREN) -> None:
        self.sample, self.children = sample, children
        self.rng = np.random.default_rng(1)
        self.payloads = payload_pool(PAYLOAD_SMALL, children, seed=2)
        self.obs = np.frombuffer(b"".join(self.payloads), np.uint8).reshape(children, -1)
        self.t = 0

    def next(self) -> tuple[int, np.ndarray, np.ndarray]:
        self.t += 1
        scores = self.rng.uniform(0, 0.25, self.sample + self.children)
        return self.t, scores[: self.sample], scores[self.sample :]


def fill_archive(arc: Any, n: int, pool: list[bytes]) -> None:
    rng = np.random.default_rng(3)
    chunk = 100_000
    for start in range(0, n, chunk):
        m = min(chunk, n - start)
        arc.add([pool[i % len(pool)] for i in range(m)], rng.uniform(0, 0.25, m), step=0)


def exit_step(arc: Any, inp: StepInputs) -> Any:
    """One ExIt step; returns the ids of the children added."""
    t, new_scores, child_scores = inp.next()
    ids = arc.sample(inp.sample, step=t)
    arc.update_scores(ids, new_scores)
    parents = np.repeat(ids.astype(np.int64), inp.children // inp.sample)
    return arc.add(inp.payloads, child_scores, parents=parents, step=t)


def make_cpprb(n: int, inp: StepInputs) -> Any:
    from cpprb import PrioritizedReplayBuffer

    rb = PrioritizedReplayBuffer(n, {"obs": {"shape": PAYLOAD_SMALL, "dtype": np.uint8}})
    rng = np.random.default_rng(3)
    for start in range(0, n, inp.children):
        m = min(inp.children, n - start)
        rb.add(obs=inp.obs[:m], priorities=rng.uniform(0, 0.25, m))
    return rb


def cpprb_step(rb: Any, inp: StepInputs) -> None:
    _, new_scores, child_scores = inp.next()
    batch = rb.sample(inp.sample)
    rb.update_priorities(batch["indexes"], new_scores)
    rb.add(obs=inp.obs, priorities=child_scores)


def step_ms(
    fn: Callable[[], Any],
    steps: int,
    budget_s: float,
    warmup: int = 3,
    after: Callable[[Any], None] | None = None,
) -> float:
    """Median ms over `steps` timed steps after `warmup` untimed ones; a slow implementation
    stops after `budget_s` seconds (at least 5 steps). `after` gets each timed step's result,
    outside the timer."""
    for _ in range(warmup):
        fn()
    times: list[float] = []
    start = time.perf_counter()
    while len(times) < steps and (len(times) < 5 or time.perf_counter() - start < budget_s):
        t0 = time.perf_counter()
        out = fn()
        times.append(1e3 * (time.perf_counter() - t0))
        if after is not None:
            after(out)
    return statistics.median(times)


MODES = ("rank", "proportional", "softmax")
ADMISSIONS = ("always", "not_below_min")


def timed_fill(make: Callable[[], Any], n: int, inp: StepInputs) -> Any:
    arc = make()
    fill_archive(arc, n, inp.payloads)
    return arc


def step_case(n: int, inp: StepInputs, steps: int) -> dict[str, float]:
    """Every implementation runs the same step count from a fresh fill (the cost per step
    depends on how much of the fill has turned over), except that slow anchors stop early."""
    r: dict[str, float] = {}
    budget = 3.0
    log(f"step: N={n} cpprb")
    rb = make_cpprb(n, inp)
    r["cpprb"] = step_ms(lambda rb=rb: cpprb_step(rb, inp), steps, budget)
    del rb
    for mode in MODES:
        opts: dict[str, Any] = {"prioritization": mode, "staleness_coef": 0.1, "seed": 0}
        for name, cls in (
            ("naive", NaiveNumpyArchive),
            ("numpy", NumpyArchive),
            ("topn", TopNumpyArchive),
        ):
            if name == "numpy" and mode == "softmax":
                continue  # the reference archive has rank and proportional only
            log(f"step: N={n} {name} {mode}")
            anchor = timed_fill(lambda cls=cls, opts=opts: cls(n, **opts), n, inp)
            r[f"{name}/{mode}"] = step_ms(lambda a=anchor: exit_step(a, inp), steps, budget)
            del anchor
            gc.collect()
        for admission in ADMISSIONS:
            log(f"step: N={n} ours {mode} {admission}")
            ours = timed_fill(
                lambda adm=admission, o=opts: TaskArchive(n, admission=adm, **o), n, inp
            )
            kept: list[int] = []
            r[f"ours/{mode}/{admission}"] = step_ms(
                lambda a=ours: exit_step(a, inp),
                steps,
                60.0,
                after=lambda ids, a=ours, kept=kept: kept.append(sum(int(i) in a for i in ids)),
            )
            r[f"survivors/{mode}/{admission}"] = statistics.median(kept)
            del ours
            gc.collect()
    return r


def bench_step(quick: bool) -> dict[str, Any]:
    sizes = [10_000, 100_000] if quick else [10_000, 100_000, 1_000_000]
    steps = {10_000: 60, 100_000: 30} if quick else {10_000: 300, 100_000: 200, 1_000_000: 100}
    inp = StepInputs()
    results: dict[str, Any] = {str(n): step_case(n, inp, steps[n]) for n in sizes}
    paper = StepInputs(PAPER_SAMPLE, PAPER_CHILDREN)
    results[PAPER] = step_case(PAPER_N, paper, 300 if quick else 1000)
    # (column label, results, children per step): the paper's operating point first.
    columns = [
        (f"{PAPER_N} ({PAPER_SAMPLE}x{PAPER_CHILDREN // PAPER_SAMPLE})", results[PAPER], paper),
        *[(f"{n:.0e}", results[str(n)], inp) for n in sizes],
    ]
    rows = []
    for mode in MODES:
        for admission in ADMISSIONS:
            key = f"ours/{mode}/{admission}"
            row = [f"{mode} / {admission}"]
            for _, r, _ in columns:
                anchors = {k: v for k, v in r.items() if k == "cpprb" or k.endswith(f"/{mode}")}
                best = min(anchors, key=anchors.get)
                row += [
                    f"{r[key]:.3f}",
                    f"{anchors[best]:.3f} ({best.split('/')[0]})",
                    f"{anchors[best] / r[key]:.2f}x",
                ]
            growth = results[str(sizes[-1])][key] / results[str(sizes[0])][key]
            results[f"growth/{mode}/{admission}"] = growth
            rows.append([*row, f"{growth:.2f}"])
    header = ["mode / admission"]
    for label, _, _ in columns:
        header += [f"ours {label}", f"fastest anchor {label}", f"anchor/ours {label}"]
    header.append(f"ours {sizes[-1]:.0e}/{sizes[0]:.0e}")
    table(
        f"ExIt step: sample {SAMPLE} + update {SAMPLE} + add {CHILDREN} with eviction at N = "
        f"{', '.join(f'{n:.0e}' for n in sizes)}; at the paper's operating point N = {PAPER_N}: "
        f"sample {PAPER_SAMPLE} + update {PAPER_SAMPLE} + add {PAPER_CHILDREN}; staleness 0.1, "
        "archive full; median ms/step (ratio = fastest anchor / ours; target >= 3x and "
        "growth <= 2)",
        header,
        rows,
    )
    work_rows = []
    for mode in MODES:
        for admission in ADMISSIONS:
            row = [f"{mode} / {admission}"]
            for _, r, _ in columns:
                kept = r[f"survivors/{mode}/{admission}"]
                row += [f"{kept:.0f}", f"{1e3 * r[f'ours/{mode}/{admission}'] / kept:.2f}"]
            work_rows.append(row)
    table(
        "What a step inserts: median new entries still resident after their step (of the "
        "step's children; each displaces a resident), and ours in µs per such entry",
        [
            "mode / admission",
            *[
                f"{h} {label}"
                for label, _, shape in columns
                for h in (f"kept of {shape.children}", "µs/kept")
            ],
        ],
        work_rows,
    )
    anchor_rows = [
        [k, *[f"{r.get(k, float('nan')):.3f}" for _, r, _ in columns]]
        for k in sorted({k for _, r, _ in columns for k in r})
        if not k.startswith(("ours", "survivors"))
    ]
    table(
        "Step anchors (median ms/step)",
        ["anchor", *[label for label, _, _ in columns]],
        anchor_rows,
    )
    print("cpprb overwrites FIFO (no score eviction, rank, staleness or lineage); naive numpy")
    print("replaces the batch-size lowest residents (not one at a time) and keeps no lineage.")
    print("topn numpy keeps the N highest of residents and children (the resident set of")
    print("not_below_min admission) in O(N + batch) per add, with no lineage or checks.")
    return results


# -- 2. Novelty -----------------------------------------------------------------------------


def novelty_case(n: int, queries: np.ndarray, reps: int, data: str) -> dict[str, Any]:
    import faiss
    import hnswlib

    log(f"novelty: N={n} ({data}) building inputs")
    emb = VECTORS[data](n, seed=12)
    payloads = [b""] * n
    r: dict[str, Any] = {}
    log(f"novelty: N={n} ours exact")
    l2 = TaskArchive(n, embedding_dim=DIM, metric="l2")
    l2.add(payloads, np.zeros(n), embeddings=emb)
    ours = l2.novelty(queries, k=K)
    r["ours_l2_ms"] = median_ms(lambda: l2.novelty(queries, k=K), reps, 0, warmup=0)
    cos = TaskArchive(n, embedding_dim=DIM, metric="cosine")
    cos.add(payloads, np.zeros(n), embeddings=emb)
    r["ours_cosine_ms"] = median_ms(lambda: cos.novelty(queries, k=K), reps, 0, warmup=1)

    log(f"novelty: N={n} faiss")
    flat = faiss.IndexFlatL2(DIM)
    flat.add(emb)
    dist, exact_ids = flat.search(queries, K)
    r["faiss_ms"] = median_ms(lambda: flat.search(queries, K), reps, 0, warmup=0)
    faiss_nov = np.sqrt(np.maximum(dist, 0)).mean(axis=1)
    r["max_abs_diff_vs_faiss"] = float(np.abs(ours - faiss_nov).max())

    log(f"novelty: N={n} hnswlib")
    hnsw = hnswlib.Index(space="l2", dim=DIM)
    t0 = time.perf_counter()
    hnsw.init_index(max_elements=n, ef_construction=200, M=16)
    hnsw.add_items(emb, np.arange(n), num_threads=THREADS)
    r["hnsw_build_s"] = time.perf_counter() - t0
    hnsw.set_ef(64)
    labels, _ = hnsw.knn_query(queries, k=K, num_threads=THREADS)
    r["hnsw_ms"] = median_ms(
        lambda: hnsw.knn_query(queries, k=K, num_threads=THREADS), reps, 0, warmup=0
    )
    r["hnsw_recall"] = recall(labels, exact_ids)

    log(f"novelty: N={n} ours approximate")
    r.update(ours_approximate(l2, queries, reps))
    return r


def bench_novelty(quick: bool) -> dict[str, Any]:
    results: dict[str, Any] = {}
    for data in VECTORS:
        results[data] = bench_novelty_on(quick, data)
    return results


def bench_novelty_on(quick: bool, data: str) -> dict[str, Any]:
    import faiss

    faiss.omp_set_num_threads(THREADS)
    sizes = [5_000] if quick else [10_000, 100_000]
    n_queries = 512 if quick else 4096
    queries = VECTORS[data](n_queries, seed=11)
    results: dict[str, Any] = {}
    rows = []
    for n in sizes:
        reps = 3 if n <= 10_000 else 2
        r = novelty_case(n, queries, reps, data)
        results[str(n)] = r
        approx = r.get("ours_approx_ms")
        rows.append(
            [
                f"{n:.0e}",
                f"{r['ours_l2_ms']:.0f}",
                f"{r['ours_cosine_ms']:.0f}",
                f"{r['faiss_ms']:.0f}",
                f"{r['faiss_ms'] / r['ours_l2_ms']:.2f}x",
                f"{r['max_abs_diff_vs_faiss']:.1e}",
                f"{r['hnsw_ms']:.0f}",
                f"{r['hnsw_build_s']:.1f}",
                f"{r['hnsw_recall']:.3f}",
                "n/a" if approx is None else f"{approx:.0f}",
                "n/a" if approx is None else f"{r['ours_approx_build_ms']:.0f}",
                "n/a" if approx is None else f"{r['ours_approx_recall']:.3f}",
                "n/a" if approx is None else f"{r['faiss_ms'] / approx:.1f}x",
            ]
        )
        gc.collect()
    table(
        f"Novelty ({data} unit vectors): {n_queries} queries, d={DIM}, k={K}, "
        f"{THREADS} threads for everyone "
        "(ms per call; ratio = faiss / ours)",
        [
            "N",
            "ours l2",
            "ours cos",
            "faiss flat",
            "faiss/ours",
            "max|diff|",
            "hnsw",
            "hnsw build s",
            "hnsw recall",
            "ours approx",
            "approx build",
            "approx recall",
            "faiss/approx",
        ],
        rows,
    )
    return results


def recall(found: np.ndarray, exact: np.ndarray) -> float:
    hits = sum(len(set(f.tolist()) & set(e.tolist())) for f, e in zip(found, exact, strict=True))
    return hits / exact.size


def ours_approximate(arc: TaskArchive, queries: np.ndarray, reps: int) -> dict[str, Any]:
    """Times `novelty(approximate=True)` when this build has it; the first call builds the
    index and is reported apart."""
    if not hasattr(arc, "novelty_recall"):
        return {}
    try:
        t0 = time.perf_counter()
        arc.novelty(queries, k=K, approximate=True)
        build_ms = 1e3 * (time.perf_counter() - t0)
    except TypeError:
        return {}
    ms = median_ms(lambda: arc.novelty(queries, k=K, approximate=True), reps, 0, warmup=0)
    return {
        "ours_approx_ms": ms,
        "ours_approx_build_ms": build_ms,
        "ours_approx_recall": float(arc.novelty_recall(queries, k=K)),
    }


def recall_at(found: np.ndarray, exact: np.ndarray) -> float:
    return recall(found, exact)


def first_reaching(target: float, params: list[int], recall_of: Callable[[int], float]) -> tuple:
    """The smallest parameter whose recall reaches `target` (else the largest), and its recall."""
    for p in params:
        r = recall_of(p)
        if r >= target:
            return p, r
    return params[-1], r


def bench_novelty_minilm(quick: bool) -> dict[str, Any]:
    """Approximate novelty on real sentence embeddings: MiniLM over generated task text.
    Every index is tuned to recall@8 >= 0.95 against the exact search, then timed on the
    whole workload: insert N, delete 10%, query 4096."""
    import faiss
    import hnswlib
    from minilm_texts import embeddings

    faiss.omp_set_num_threads(THREADS)
    n, nq = (5_000, 512) if quick else (100_000, 4096)
    log(f"novelty/minilm: embedding {n + nq} texts (cached after the first run)")
    emb = embeddings(n + nq)
    rows, queries = emb[:n], emb[n:]
    gone = np.arange(0, n, 10)  # 10% deleted
    kept = np.setdiff1d(np.arange(n), gone)
    target = 0.95
    flat = faiss.IndexFlatL2(rows.shape[1])
    flat.add(rows[kept])
    _, exact = flat.search(queries, K)
    exact = kept[exact]
    results: dict[str, Any] = {"n": n, "queries": nq}

    def timed(fn: Callable[[], Any]) -> float:
        t0 = time.perf_counter()
        fn()
        return 1e3 * (time.perf_counter() - t0)

    # Exact anchor: faiss IndexFlatL2 (insert, delete by rebuilding without the gone rows).
    def flat_run() -> dict[str, float]:
        ix = faiss.IndexFlatL2(rows.shape[1])
        ins = timed(lambda: ix.add(rows))
        dele = timed(lambda: ix.remove_ids(gone.astype(np.int64)))
        qry = median_ms(lambda: ix.search(queries, K), 3, 0, warmup=1)
        return {"insert_ms": ins, "delete_ms": dele, "query_ms": qry, "recall": 1.0}

    results["faiss_flat"] = flat_run()

    # Each index is built once (timed), then its query-time parameter is raised until the
    # recall target is met, and the query is timed at that setting.
    def faiss_ivf() -> dict[str, float]:
        quant = faiss.IndexFlatL2(rows.shape[1])
        ix = faiss.IndexIVFFlat(quant, rows.shape[1], max(1, int(4 * np.sqrt(n))))
        ins = timed(lambda: (ix.train(rows), ix.add(rows)))
        dele = timed(lambda: ix.remove_ids(gone.astype(np.int64)))

        def recall(nprobe: int) -> float:
            ix.nprobe = nprobe
            return recall_at(ix.search(queries, K)[1], exact)

        nprobe, rec = first_reaching(target, [1, 2, 4, 8, 16, 32, 64, 128], recall)
        ix.nprobe = nprobe
        qry = median_ms(lambda: ix.search(queries, K), 3, 0, warmup=1)
        return {
            "insert_ms": ins,
            "delete_ms": dele,
            "query_ms": qry,
            "recall": rec,
            "nprobe": nprobe,
        }

    log("novelty/minilm: faiss IVFFlat")
    results["faiss_ivf"] = faiss_ivf()

    def hnsw() -> dict[str, float]:
        ix = hnswlib.Index(space="l2", dim=rows.shape[1])
        ix.init_index(max_elements=n, ef_construction=200, M=16)
        ins = timed(lambda: ix.add_items(rows, np.arange(n), num_threads=THREADS))
        dele = timed(lambda: [ix.mark_deleted(int(i)) for i in gone])

        def recall(ef: int) -> float:
            ix.set_ef(ef)
            return recall_at(ix.knn_query(queries, k=K, num_threads=THREADS)[0], exact)

        ef, rec = first_reaching(target, [16, 32, 64, 128, 256], recall)
        ix.set_ef(ef)
        qry = median_ms(lambda: ix.knn_query(queries, k=K, num_threads=THREADS), 3, 0, warmup=1)
        return {"insert_ms": ins, "delete_ms": dele, "query_ms": qry, "recall": rec, "ef": ef}

    log("novelty/minilm: hnswlib")
    results["hnswlib"] = hnsw()

    def ours() -> dict[str, float]:
        arc = TaskArchive(n, embedding_dim=rows.shape[1], metric="l2")
        ins = timed(lambda: arc.add([b""] * n, np.zeros(n), embeddings=rows))
        dele = timed(lambda: arc.remove(gone))
        build = timed(lambda: arc.novelty(queries[:1], k=K, approximate=True))
        nprobe, rec = first_reaching(
            target,
            [1, 2, 4, 8, 16, 32, 64, 128],
            lambda q: float(arc.novelty_recall(queries, k=K, nprobe=q)),
        )
        qry = median_ms(lambda: arc.novelty(queries, k=K, approximate=True, nprobe=nprobe), 3, 0)
        exact_ms = median_ms(lambda: arc.novelty(queries, k=K), 3, 0, warmup=0)
        return {
            "insert_ms": ins + build,
            "delete_ms": dele,
            "query_ms": qry,
            "recall": rec,
            "nprobe": nprobe,
            "exact_query_ms": exact_ms,
        }

    log("novelty/minilm: ours")
    results["ours_ivf"] = ours()
    flat_q = results["faiss_flat"]["query_ms"]
    rows_out = []
    for name in ("faiss_flat", "faiss_ivf", "hnswlib", "ours_ivf"):
        r = results[name]
        total = r["insert_ms"] + r["delete_ms"] + r["query_ms"]
        r["total_ms"] = total
        param = next((f"{k}={r[k]}" for k in ("nprobe", "ef") if k in r), "exact")
        rows_out.append(
            [
                name,
                param,
                f"{r['recall']:.3f}",
                f"{r['insert_ms']:.0f}",
                f"{r['delete_ms']:.0f}",
                f"{r['query_ms']:.1f}",
                f"{total:.0f}",
                f"{flat_q / r['query_ms']:.1f}x",
            ]
        )
    ours_total = results["ours_ivf"]["total_ms"]
    for name in ("faiss_flat", "faiss_ivf", "hnswlib"):
        results[f"{name}/ours_total"] = results[name]["total_ms"] / ours_total
        results[f"{name}/ours_query"] = results[name]["query_ms"] / results["ours_ivf"]["query_ms"]
    table(
        f"Approximate novelty on MiniLM embeddings of generated text: N={n}, {nq} queries, "
        f"k={K}, d=384, {THREADS} threads; each index tuned to recall@8 >= {target}; "
        "insert N, delete 10%, query (ours: insert includes the index build)",
        [
            "index",
            "param",
            "recall@8",
            "insert ms",
            "delete ms",
            "query ms",
            "total ms",
            "flat/query",
        ],
        rows_out,
    )
    print(
        "ours vs anchors (anchor / ours): total "
        + ", ".join(
            f"{a} {results[f'{a}/ours_total']:.2f}x" for a in ("faiss_flat", "faiss_ivf", "hnswlib")
        )
        + "; query "
        + ", ".join(
            f"{a} {results[f'{a}/ours_query']:.2f}x" for a in ("faiss_flat", "faiss_ivf", "hnswlib")
        )
    )
    print(f"ours exact novelty on the same data: {results['ours_ivf']['exact_query_ms']:.0f} ms")
    return results


# -- 3. Memory ------------------------------------------------------------------------------


def memory_child(kind: str, n: int) -> None:
    """Runs in a fresh interpreter: prints the RSS growth of holding n entries."""
    import psutil

    proc = psutil.Process()
    rng = np.random.default_rng(5)
    chunk = 10_000

    def make_chunk(m: int) -> tuple[list[bytes], np.ndarray, np.ndarray]:
        raw = rng.bytes(PAYLOAD_BIG * m)
        payloads = [raw[i * PAYLOAD_BIG : (i + 1) * PAYLOAD_BIG] for i in range(m)]
        return payloads, rng.uniform(0, 0.25, m), rng.standard_normal((m, DIM), dtype=np.float32)

    gc.collect()
    before = proc.memory_info().rss
    if kind == "ours":
        arc: Any = TaskArchive(n, embedding_dim=DIM, metric="cosine")
    else:
        arc = NumpyArchive(n, embedding_dim=DIM)
    for start in range(0, n, chunk):
        payloads, scores, emb = make_chunk(min(chunk, n - start))
        arc.add(payloads, scores, embeddings=emb)
        del payloads, scores, emb
    gc.collect()
    after = proc.memory_info().rss
    assert len(arc) == n
    # What freeing the archive gives back excludes the allocator's leftovers from the inputs.
    del arc
    gc.collect()
    ctypes.CDLL(None).malloc_trim(0)
    released = proc.memory_info().rss
    print(json.dumps({"rss_delta": after - before, "rss_released": after - released}))


def bench_memory(quick: bool) -> dict[str, Any]:
    n = 100_000 if quick else 1_000_000
    raw = n * (PAYLOAD_BIG + DIM * 4)
    results: dict[str, Any] = {"n": n, "raw_bytes": raw}
    rows = []
    for kind in ("ours", "numpy"):
        log(f"memory: {kind} N={n} in a subprocess")
        out = subprocess.run(
            [sys.executable, __file__, "--memory-child", kind, str(n)],
            check=True,
            capture_output=True,
            text=True,
        )
        child = json.loads(out.stdout.strip().splitlines()[-1])
        delta, released = child["rss_delta"], child["rss_released"]
        results[f"{kind}_bytes"] = delta
        results[f"{kind}_ratio"] = delta / raw
        results[f"{kind}_released_bytes"] = released
        rows.append(
            [
                kind,
                f"{delta / 2**20:.0f}",
                f"{released / 2**20:.0f}",
                f"{raw / 2**20:.0f}",
                f"{delta / raw:.3f}",
                f"{released / raw:.3f}",
            ]
        )
    table(
        f"Memory: {n:.0e} entries, {PAYLOAD_BIG} B payloads, d={DIM} f32 embeddings, "
        "fresh process (growth = RSS after filling - before; released = RSS given back "
        "when the archive is freed)",
        ["archive", "growth MiB", "released MiB", "raw MiB", "growth/raw", "released/raw"],
        rows,
    )
    return results


# -- 4. Snapshot ----------------------------------------------------------------------------


def np_save(path: Path, payloads: np.ndarray, emb: np.ndarray) -> None:
    with open(path, "wb") as f:
        np.save(f, payloads)
        np.save(f, emb)
        f.flush()
        os.fsync(f.fileno())


def np_load(path: Path) -> tuple[np.ndarray, np.ndarray]:
    with open(path, "rb") as f:
        return np.load(f), np.load(f)


def bench_snapshot(quick: bool) -> dict[str, Any]:
    n = 20_000 if quick else 100_000
    rng = np.random.default_rng(6)
    payload_matrix = rng.integers(0, 256, (n, PAYLOAD_BIG), dtype=np.uint8)
    emb = rng.standard_normal((n, DIM), dtype=np.float32)
    arc = TaskArchive(n, embedding_dim=DIM)
    arc.add([row.tobytes() for row in payload_matrix], rng.uniform(0, 0.25, n), embeddings=emb)
    data_bytes = payload_matrix.nbytes + emb.nbytes
    reps, budget_s = 7, 60.0  # every rep runs: medians of 7 in the same process state
    with tempfile.TemporaryDirectory(prefix="archive_bench_") as tmp:
        ours_path, np_path = Path(tmp, "archive.snap"), Path(tmp, "arrays.npy")
        log(f"snapshot: N={n}")
        r = {
            "bytes": data_bytes,
            "ours_save_ms": median_ms(lambda: arc.save(ours_path), reps, budget_s, 1),
            "numpy_save_ms": median_ms(
                lambda: np_save(np_path, payload_matrix, emb), reps, budget_s, 1
            ),
            "ours_load_ms": median_ms(lambda: TaskArchive.load(ours_path), reps, budget_s, 1),
            "numpy_load_ms": median_ms(lambda: np_load(np_path), reps, budget_s, 1),
            "ours_file_bytes": ours_path.stat().st_size,
            "numpy_file_bytes": np_path.stat().st_size,
        }
        loaded = TaskArchive.load(ours_path)
        assert len(loaded) == n and loaded.get([n - 1]) == [payload_matrix[-1].tobytes()]
    rows = []
    for op in ("save", "load"):
        ours_gbs = data_bytes / r[f"ours_{op}_ms"] / 1e6
        np_gbs = data_bytes / r[f"numpy_{op}_ms"] / 1e6
        r[f"{op}_speed_ratio"] = ours_gbs / np_gbs
        rows.append(
            [
                op,
                f"{r[f'ours_{op}_ms']:.0f}",
                f"{r[f'numpy_{op}_ms']:.0f}",
                f"{ours_gbs:.2f}",
                f"{np_gbs:.2f}",
                f"{ours_gbs / np_gbs:.2f}x",
            ]
        )
    table(
        f"Snapshot: {n:.0e} entries ({data_bytes / 1e6:.0f} MB of payload + embedding), "
        "both fsynced (speed ratio = ours / numpy)",
        ["op", "ours ms", "numpy ms", "ours GB/s", "numpy GB/s", "ours/numpy"],
        rows,
    )
    print(f"file sizes: ours {r['ours_file_bytes']} B, numpy {r['numpy_file_bytes']} B")
    return r


# -- 5. Small calls -------------------------------------------------------------------------


def per_call_us(fn: Callable[[], Any], number: int) -> float:
    """Median of 5 timeit runs, each of up to `number` calls and about 0.2 s at most."""
    first = timeit.timeit(fn, number=1)
    number = max(1, min(number, int(0.2 / max(first, 1e-9))))
    runs = timeit.repeat(fn, number=number, repeat=5)
    return 1e6 * statistics.median(runs) / number


def small_calls(
    arc: Any, pool: list[bytes], scores: Iterator[np.ndarray], step: int, number: int
) -> dict[str, float]:
    one_id = np.asarray(arc.ids()[-1:])
    return {
        "sample1_us": per_call_us(lambda: arc.sample(1, step=step), number),
        "update1_us": per_call_us(lambda: arc.update_scores(one_id, next(scores)), number),
        "add1_us": per_call_us(lambda: arc.add(pool, next(scores), step=step), number),
    }


def bench_small(quick: bool) -> dict[str, Any]:
    n = 100_000
    number = 2_000 if quick else 20_000
    pool = payload_pool(PAYLOAD_SMALL, 1, seed=7)
    # Distinct one-element score arrays, cycled: repeated values would create ties.
    scores = itertools.cycle(list(np.random.default_rng(8).uniform(0, 0.25, (200_000, 1))))
    step = 10
    results: dict[str, Any] = {}
    for kind, cls in (("ours", TaskArchive), ("numpy", NumpyArchive)):
        log(f"small: {kind}")
        arc = cls(n, prioritization="rank", staleness_coef=0.1, seed=0)
        fill_archive(arc, n, pool)
        results[kind] = small_calls(arc, pool, scores, step, number)
    rows = [
        [
            call,
            f"{results['ours'][key]:.1f}",
            f"{results['numpy'][key]:.1f}",
            f"{results['numpy'][key] / results['ours'][key]:.1f}x",
        ]
        for call, key in (
            ("sample(1)", "sample1_us"),
            ("update_scores(1 id)", "update1_us"),
            ("add(1) with eviction", "add1_us"),
        )
    ]
    table(
        f"Small calls from Python at N={n:.0e}, rank + staleness 0.1 "
        "(µs per call; ratio = numpy / ours)",
        ["call", "ours", "numpy", "numpy/ours"],
        rows,
    )
    print("the timed loop includes next() on a cycled score list (~0.05 µs).")
    return results


# -- main -----------------------------------------------------------------------------------


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="small sizes, a smoke run (< 1 min)")
    p.add_argument(
        "--only",
        default=",".join(SECTIONS),
        help=f"comma-separated sections among {', '.join(SECTIONS)}",
    )
    p.add_argument("--json", type=Path, help="also write the results to this JSON file")
    p.add_argument("--memory-child", nargs=2, metavar=("KIND", "N"), help=argparse.SUPPRESS)
    args = p.parse_args()
    args.only = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = set(args.only) - set(SECTIONS)
    if unknown:
        p.error(f"unknown section(s) {sorted(unknown)}; choose among {', '.join(SECTIONS)}")
    return args


def main() -> None:
    args = parse_args()
    if args.memory_child:
        memory_child(args.memory_child[0], int(args.memory_child[1]))
        return
    info = machine_info()
    print("# TaskArchive benchmark")
    for key, value in info.items():
        print(f"{key}: {value}")
    runners = {
        "step": bench_step,
        "novelty": bench_novelty,
        "minilm": bench_novelty_minilm,
        "memory": bench_memory,
        "snapshot": bench_snapshot,
        "small": bench_small,
    }
    results: dict[str, Any] = {"machine": info, "quick": args.quick}
    start = time.perf_counter()
    for name in SECTIONS:
        if name in args.only:
            log(f"section {name}")
            results[name] = runners[name](args.quick)
    log(f"done in {time.perf_counter() - start:.0f} s")
    print(f"load average at the end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
