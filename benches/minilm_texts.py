"""Real sentence embeddings for the novelty benchmark: all-MiniLM-L6-v2 over varied generated
text (task statements and attempts of the kinds ExIt archives), cached under the temp dir,
keyed by a hash of this file, so reruns are quick."""

from __future__ import annotations

import hashlib
import os
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
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(count):
        n, k, d, w = (int(x) for x in rng.integers(2, 97, size=4))
        out.append(
            FRAMES[rng.integers(len(FRAMES))].format(
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
        )
    return out


def embeddings(count: int) -> np.ndarray:
    """`count` unit MiniLM embeddings (float32, 384-d) of distinct generated texts."""
    key = hashlib.sha256(Path(__file__).read_bytes() + str(count).encode()).hexdigest()[:16]
    cache = Path(tempfile.gettempdir()) / f"exit_verl_minilm_{key}.npy"
    if cache.exists():
        return np.load(cache)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from exit_verl.embedding import SentenceTransformerEmbedder

    emb = SentenceTransformerEmbedder(batch_size=128)(generate(count))
    np.save(cache, emb)
    return emb
