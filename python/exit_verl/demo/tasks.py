"""The demo's task family: small integer arithmetic of mixed difficulty, with graded rewards.

A task asks for the value of an expression of one or more operations on small numbers, e.g.
`9 + 10` or `7 * 6` (one operation) or `14 - 1 + 2` (two). Reading left to right is also the
precedence order, and every intermediate value is >= 0. Tasks cycle through the operation
counts of `steps` (default 1, 1, 2: two one-operation tasks for each two-operation one), so a
set of tasks has an exact difficulty mix. The base SmolLM2-135M-Instruct solves about half of
the one-operation tasks and almost none of the two-operation ones, so its held-out accuracy
lies well inside (0, 1) with room to improve (docs/demo.md has the measured figures).

The answer format is the math family's: the task asks for `\\boxed{number}`. The reward is
graded, not only 0/1, so a group of responses usually has spread (learnability):

    reward = 1                                   if the final answer is exactly right
           = 0.5 · exp(−|pred − answer| / scale)  if a number was given (scale = 1 + |answer|/10)
           = 0                                   if no number can be read from the response

where the final answer is the number in the last `\\boxed{}` or, without one, the last number
of the response (the 135M model rarely boxes its answer). Train and held-out tasks are split
by a hash of the expression (1 in 8 held out), so they never overlap whatever the seed, and
the held-out set is the same for every run.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from exit_verl.domains.math import last_boxed

DATA_SOURCE = "exit_verl/arithmetic"
DEFAULT_STEPS = (1, 1, 2)
MAX_STEPS = 4
MAX_MISSES = 20_000
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")


def _expression(rng: np.random.Generator, steps: int) -> tuple[str, int]:
    """`steps` operations read left to right, every value >= 0: first `a + b` or `a - b`
    (a, b <= 15) or `a * b` (a <= 12, b <= 9), then `+ c` or `- c` with c <= 9."""
    first = str(rng.choice(["+", "-", "*"]))
    value = int(rng.integers(2, 13 if first == "*" else 16))
    text = str(value)
    for i in range(steps):
        op = first if i == 0 else str(rng.choice(["+", "-"]))
        high = 15 if i == 0 and op != "*" else 9
        if op == "-":
            if value < 2:
                op = "+"
            else:
                high = min(high, value)
        b = int(rng.integers(2 if op != "-" else 1, high + 1))
        value = value + b if op == "+" else value - b if op == "-" else value * b
        text = f"{text} {op} {b}"
    return text, value


def is_heldout(expression: str) -> bool:
    """A fixed 1-in-8 split by a hash of the expression: no seed can put a held-out task in
    training, so every run and arm can be evaluated on the same held-out tasks."""
    digest = hashlib.blake2b(expression.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") % 8 == 0


def make_tasks(
    n: int, split: str = "train", seed: int = 0, steps: int | Sequence[int] = DEFAULT_STEPS
) -> list[dict]:
    """`n` distinct tasks of the split ("train" or "heldout"), drawn with `seed`; task i has
    `steps[i % len(steps)]` operations (an int: all tasks that many)."""
    if split not in ("train", "heldout"):
        raise ValueError(f"split must be 'train' or 'heldout', got {split!r}")
    counts = (steps,) if isinstance(steps, int) else tuple(steps)
    if n < 0 or not counts or not all(1 <= int(s) <= MAX_STEPS for s in counts):
        raise ValueError(f"n must be >= 0 and steps between 1 and {MAX_STEPS}, got {steps!r}")
    want_heldout = split == "heldout"
    rng = np.random.default_rng([seed, int(want_heldout), *counts])
    tasks: list[dict] = []
    seen: set[str] = set()
    misses = 0  # draws in a row that gave no new task: the split's pool is used up
    while len(tasks) < n:
        count = int(counts[len(tasks) % len(counts)])
        text, value = _expression(rng, count)
        if text in seen or is_heldout(text) != want_heldout:
            misses += 1
            if misses > MAX_MISSES:
                raise ValueError(f"fewer than {n} distinct {split} tasks with steps {counts}")
            continue
        misses = 0
        seen.add(text)
        tasks.append(
            {
                "id": f"{split}-{len(tasks)}",
                "prompt": f"Compute {text}. Give the final answer as \\boxed{{number}}.",
                "answer": str(value),
                "expression": text,
                "steps": count,
                "data_source": DATA_SOURCE,
            }
        )
    return tasks


def extract_number(response: str) -> float | None:
    """The number in the last `\\boxed{}` if there is one, else the last number in the
    response."""
    boxed = last_boxed(response)
    for candidate in (boxed, response):
        if candidate is None:
            continue
        numbers = _NUMBER.findall(candidate.replace(",", ""))
        if numbers:
            return float(numbers[-1])
    return None


def reward(task: Mapping[str, Any], response: str) -> float:
    """Graded reward of `response` for `task` (see the module docstring); only the final
    answer counts."""
    answer = float(task["answer"])
    pred = extract_number(response)
    if pred is None:
        return 0.0
    if pred == answer:
        return 1.0
    scale = 1.0 + abs(answer) / 10.0
    return 0.5 * math.exp(-abs(pred - answer) / scale)
