"""Real sentence embeddings for the novelty benchmark: all-MiniLM-L6-v2 over varied generated
text (task statements and attempts of the kinds ExIt archives), cached under the temp dir,
keyed by a hash of this file, so reruns are quick.

`generate(n)` is a prefix of `generate(m)` for n <= m, so one cache of m rows serves every
smaller count. Embedding is slow on a CPU (2048 texts took 9.4 s on the 2-core dev machine at
load average 1.5, 2026-11-23: about 8 min per 1e5, more when the machine is busy), so the work
is done in chunks saved as they finish, and an interrupted run resumes where it stopped
(`python benches/minilm_texts.py 104096` fills the cache ahead of a benchmark run)."""

from __future__ import annotations

import hashlib
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

SUBJECTS = [
    "a farmer",
    "the library",
    "a train",
    "my sister",
    "the robot",
    "a baker",
    "the city council",
    "a student",
    "the river",
    "an old sailor",
    "the company",
    "a chess player",
    "the garden",
    "a physicist",
    "the orchestra",
    "a nurse",
    "the museum",
    "a startup",
    "the volcano",
    "a cat",
]
ACTIONS = [
    "buys",
    "sells",
    "loses",
    "finds",
    "builds",
    "paints",
    "repairs",
    "counts",
    "shares",
    "measures",
    "plants",
    "delivers",
    "borrows",
    "writes",
    "cooks",
    "splits",
    "moves",
    "sorts",
]
OBJECTS = [
    "apples",
    "books",
    "tickets",
    "bricks",
    "songs",
    "coins",
    "chairs",
    "letters",
    "seeds",
    "boxes",
    "maps",
    "stones",
    "cakes",
    "lamps",
    "shirts",
    "files",
    "eggs",
    "ropes",
    "keys",
]
FRAMES = [
    "If {s} {a} {n} {o} every {d} days, how many {o} after {w} weeks?",
    "Solve: {s} {a} {n} {o} and then gives away {k} of them. What remains?",
    "Write a short proof that the sum of {n} consecutive integers starting at {k} is {parity}.",
    "Attempt: {s} {a} {n} {o}; I multiply {n} by {k} and get {prod}, so the answer is {prod}.",
    "Improve this answer: the {o} cost {n} dollars each, {k} were bought, total {prod} dollars.",
    "Try another approach: model {s} as a graph with {n} nodes and {k} edges, then count paths.",
    "Explain why {s} cannot {a} more than {n} {o} in {d} days using a pigeonhole argument.",
    "Define a function that takes {n} {o} and returns the {k} largest after sorting by weight.",
    "Tool call: search('{o} prices {s}'), then compute {n} * {k} and report the result.",
    "Summary of the previous attempt: it assumed {n} {o} per day but the task said {k}.",
]


def generate(count: int, seed: int = 0) -> list[str]:
    """`count` distinct texts; the first n of generate(m) are generate(n)."""
    rng = np.random.default_rng(seed)
    out: list[str] = []
    seen: set[str] = set()
    while len(out) < count:
        n, k, d, w = (int(x) for x in rng.integers(2, 97, size=4))
        text = FRAMES[rng.integers(len(FRAMES))].format(
            s=SUBJECTS[rng.integers(len(SUBJECTS))],
            a=ACTIONS[rng.integers(len(ACTIONS))],
            o=OBJECTS[rng.integers(len(OBJECTS))],
            n=n,
            k=k,
            d=d,
            w=w,
            prod=n * k,
            parity="even" if n * k % 2 == 0 else "odd",
        )
        if text not in seen:  # duplicates would make nearest-neighbour ties and fake recall
            seen.add(text)
            out.append(text)
    return out


CHUNK = 8192
MAX_SEQ_LENGTH = 64  # the longest generated text is well under 64 word pieces


def _cache_dir() -> Path:
    key = hashlib.sha256(Path(__file__).read_bytes()).hexdigest()[:16]
    path = Path(tempfile.gettempdir()) / f"exit_verl_minilm_{key}"
    path.mkdir(exist_ok=True)
    return path


def embeddings(count: int) -> np.ndarray:
    """`count` unit MiniLM embeddings (float32, 384-d) of distinct generated texts."""
    cache = _cache_dir()
    chunks = -(-count // CHUNK)
    missing = [c for c in range(chunks) if not (cache / f"chunk_{c:04d}.npy").exists()]
    if missing:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        from exit_verl.embedding import SentenceTransformerEmbedder

        embed = SentenceTransformerEmbedder(batch_size=256)
        embed.model.max_seq_length = MAX_SEQ_LENGTH
        texts = generate(chunks * CHUNK)
        for c in missing:
            emb = embed(texts[c * CHUNK : (c + 1) * CHUNK])
            tmp = cache / f".chunk_{c:04d}.{os.getpid()}.npy"
            np.save(tmp, emb)
            tmp.replace(cache / f"chunk_{c:04d}.npy")  # a finished chunk is never torn
            print(f"minilm: chunk {c + 1}/{chunks} embedded", file=sys.stderr, flush=True)
    parts = [np.load(cache / f"chunk_{c:04d}.npy") for c in range(chunks)]
    return np.ascontiguousarray(np.concatenate(parts)[:count])


if __name__ == "__main__":
    print(embeddings(int(sys.argv[1])).shape)
