"""A procedurally generated, verifiable task family with graded rewards: multi-step arithmetic.

Each task asks for the value of an integer expression such as `(7 + 5) * 3 - 4`. Revising an
answer can help (an attempt that slipped on one step is close to right), and the reward is
graded, not only 0/1:

    reward = 1                                   if the final answer is exactly right
           = 0.5 · exp(−|pred − answer| / scale)  if a number was given (scale = 1 + |answer|/10)
           = 0                                   if no number can be read from the response

so a group of responses usually has spread (learnability) even for a 135M-parameter model.
Train and held-out tasks are split by a hash of the expression (1 in 8 held out), so they
never overlap whatever the seed, and the held-out set is the same for every run.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Mapping
from typing import Any

import numpy as np

DATA_SOURCE = "exit_verl/arithmetic"
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")
_BOXED = re.compile(r"\\boxed\{([^{}]*)\}")


def _expression(rng: np.random.Generator, steps: int) -> tuple[str, int]:
    value = int(rng.integers(2, 13))
    text = str(value)
    for i in range(steps):
        op = rng.choice(["+", "-", "*"])
        b = int(rng.integers(2, 10 if op == "*" else 20))
        if i > 0:
            text = f"({text})"
        text = f"{text} {op} {b}"
        value = value + b if op == "+" else value - b if op == "-" else value * b
    return text, value


def is_heldout(expression: str) -> bool:
    """A fixed 1-in-8 split by a hash of the expression: no seed can put a held-out task in
    training, so every run and arm can be evaluated on the same held-out tasks."""
    digest = hashlib.blake2b(expression.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") % 8 == 0


def make_tasks(n: int, split: str = "train", seed: int = 0, steps: int = 2) -> list[dict]:
    """`n` distinct tasks of the split ("train" or "heldout"), drawn with `seed`."""
    if split not in ("train", "heldout"):
        raise ValueError(f"split must be 'train' or 'heldout', got {split!r}")
    if n < 0 or steps < 1:
        raise ValueError("n must be >= 0 and steps >= 1")
    want_heldout = split == "heldout"
    rng = np.random.default_rng([seed, int(want_heldout), steps])
    tasks: list[dict] = []
    seen: set[str] = set()
    while len(tasks) < n:
        text, value = _expression(rng, steps)
        if text in seen or is_heldout(text) != want_heldout:
            continue
        seen.add(text)
        tasks.append(
            {
                "id": f"{split}-{len(tasks)}",
                "prompt": f"Compute {text}. Give the final answer as \\boxed{{number}}.",
                "answer": str(value),
                "expression": text,
                "data_source": DATA_SOURCE,
            }
        )
    return tasks


def extract_number(response: str) -> float | None:
    """The boxed number if there is one, else the last number in the response."""
    boxed = _BOXED.findall(response)
    for candidate in (boxed[-1] if boxed else None, response):
        if candidate is None:
            continue
        numbers = _NUMBER.findall(candidate.replace(",", ""))
        if numbers:
            return float(numbers[-1])
    return None


def reward(task: Mapping[str, Any], response: str) -> float:
    """Graded reward of `response` for `task` (see the module docstring).

    Only the final answer counts: the last \\boxed{} content (checked by math-verify), or the
    last number when nothing is boxed — restating the question earns nothing.
    """
    from math_verify import parse, verify

    answer = float(task["answer"])
    boxed = _BOXED.findall(response)
    exact = False
    if boxed:
        try:
            exact = verify(parse(f"\\boxed{{{task['answer']}}}"), parse(f"\\boxed{{{boxed[-1]}}}"))
        except Exception:  # math-verify may reject odd inputs; the number check still runs
            exact = False
    pred = extract_number(response)
    if exact or (pred is not None and pred == answer):
        return 1.0
    if pred is None:
        return 0.0
    scale = 1.0 + abs(answer) / 10.0
    return 0.5 * math.exp(-abs(pred - answer) / scale)
