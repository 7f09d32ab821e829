"""Math with verifiable answers, scored as the paper scores it (App. A.2): 1 when the
response's final answer equals the reference answer by math-verify (PyPI `math-verify`), else 0.

One answer format end to end: the math prompt family asks for the final answer in `\\boxed{}`
(`SYSTEM_PROMPT`, the system prompt of `exit_verl.prompts.templates_for("math")`, which the
improve and diverge prompts carry too), and the scorer reads only the LAST `\\boxed{...}` of a
response. A response without one, or whose last one is not closed (cut off), scores 0 whatever
numbers it holds.

math-verify bounds its parsing and comparison with `signal.alarm`, which only works in a
process's main thread, and verl's reward loop calls reward functions from executor threads.
There the check runs in a few worker processes with a wall-clock timeout; a worker that
overruns it (sympy on a hostile answer) is killed with its pool, and the answer scores 0.
"""

from __future__ import annotations

import math
import multiprocessing
import os
import re
import threading
from collections.abc import Callable
from typing import Any

ANSWER_FORMAT = "\\boxed{}"
DEFAULT_TIMEOUT_S = 5.0
# Longer "answers" are not final answers; they are not handed to sympy at all.
MAX_ANSWER_CHARS = 1000
_BOX_OPEN = re.compile(r"\\(?:boxed|fbox)\s*\{")


def system_prompt() -> str:
    """The math family's system prompt (asks for the final answer in `\\boxed{}`)."""
    from exit_verl.prompts import templates_for

    system = templates_for("math").system
    assert system is not None and ANSWER_FORMAT in system
    return system


def last_boxed(text: str) -> str | None:
    """Contents of the last `\\boxed{...}` (or `\\fbox{...}`) in `text`, braces balanced;
    None when there is none or the last one is never closed."""
    opens = list(_BOX_OPEN.finditer(text))
    if not opens:
        return None
    start = opens[-1].end()
    depth = 1
    for i in range(start, len(text)):
        if text[i] == "{":
            depth += 1
        elif text[i] == "}":
            depth -= 1
            if depth == 0:
                return text[start:i]
    return None


def score(response: str, reference: str, *, timeout_s: float = DEFAULT_TIMEOUT_S) -> float:
    """1.0 if the last `\\boxed{}` answer of `response` equals `reference` (math-verify), else
    0.0. `reference` is the bare answer (e.g. `\\frac{1}{2}` or `1207`, no box)."""
    if not isinstance(response, str) or not isinstance(reference, str):
        raise ValueError("response and reference must be strings")
    if not reference.strip():
        raise ValueError("the reference answer is empty")
    answer = last_boxed(response)
    if answer is None or not answer.strip() or len(answer) > MAX_ANSWER_CHARS:
        return 0.0
    return 1.0 if equivalent(answer, reference, timeout_s=timeout_s) else 0.0


def equivalent(answer: str, reference: str, *, timeout_s: float = DEFAULT_TIMEOUT_S) -> bool:
    """Whether two bare answers are mathematically equal for math-verify, within `timeout_s`."""
    if not timeout_s > 0:
        raise ValueError(f"timeout_s must be > 0, got {timeout_s}")
    if threading.current_thread() is threading.main_thread():
        return _verify(answer, reference, timeout_s)
    return bool(_WORKERS.call(_verify, (answer, reference, timeout_s), 2 * timeout_s + 1, False))


def _verify(answer: str, reference: str, timeout_s: float) -> bool:
    """math-verify with its own (signal) timeouts: call only in a main thread."""
    from math_verify import parse, verify

    seconds = max(1, math.ceil(timeout_s))  # math-verify counts whole seconds
    gold = parse(f"\\boxed{{{reference}}}", parsing_timeout=seconds)
    pred = parse(f"\\boxed{{{answer}}}", parsing_timeout=seconds)
    if not gold or not pred:
        return False
    return bool(verify(gold, pred, timeout_seconds=seconds))


class WorkerPool:
    """Spawned worker processes that run picklable calls with a wall-clock timeout.

    A call that overruns its timeout kills the pool (its worker may be stuck in C code that no
    signal interrupts) and yields `default`; calls that were queued behind it are retried once
    on a fresh pool. A call that raises yields `default` too.
    """

    def __init__(self, workers: int) -> None:
        if workers < 1:
            raise ValueError(f"workers must be >= 1, got {workers}")
        self.workers = workers
        self.restarts = 0
        self._lock = threading.Lock()
        self._pool: Any = None

    def _current(self) -> Any:
        with self._lock:
            if self._pool is None:
                context = multiprocessing.get_context("spawn")  # no fork of a threaded process
                self._pool = context.Pool(self.workers)
            return self._pool

    def _discard(self, pool: Any) -> bool:
        """Terminates `pool` if it is still the current one; False if it was replaced."""
        with self._lock:
            if self._pool is not pool:
                return False
            self._pool = None
            self.restarts += 1
        pool.terminate()
        return True

    def call(self, fn: Callable[..., Any], args: tuple, timeout_s: float, default: Any) -> Any:
        for _ in range(2):
            pool = self._current()
            try:
                pending = pool.apply_async(fn, args)
            except ValueError:  # another thread terminated this pool just now
                continue
            try:
                return pending.get(timeout=timeout_s)
            except multiprocessing.TimeoutError:
                if self._discard(pool):
                    return default
            except Exception:  # the call raised in the worker
                return default
        return default

    def close(self) -> None:
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.terminate()


# math-verify's own alarm fires after ceil(timeout_s) in the worker; the pool's limit leaves
# room for queueing behind other checks.
_WORKERS = WorkerPool(max(1, min(4, os.cpu_count() or 1)))
