"""The ML-engineering reward as verl loads it (`reward.custom_reward_function.path` = this file).

verl's reward loop calls `compute_score(data_source, solution_str, ground_truth, extra_info)`
for every response, in its reward workers. Here `ground_truth` names the competition
(`Task.ref`: a built-in name or a competition folder); the script is the response's last
fenced code block (`mle.extract_code`). It runs in the sandbox (`exit_verl.domains.mle`) and
the result goes back to verl as a dict: `score` (the normalized metric, 0 on failure) is the
reward, and verl keeps the other keys as the row's `reward_extra_info` — `feedback` (the
error trace, None on success) is what the ExIt controller stores with the attempt and shows
in the next improve prompt; `mle_raw` (the metric, None on failure) and `mle_seconds`.

Settings come from `reward.custom_reward_function.reward_kwargs` (verl passes them as keyword
arguments): `timeout_s` (60), `concurrency` (sandbox runs at once on this machine, over all
reward workers; default half the CPUs), `memory_mb`, `processes`, `file_mb`, `workdir_mb`,
`feedback_chars` (the end of the error kept for the prompt, 1500), `allow_unsandboxed`, and
`log_path`: a file that gets one JSON line per run (time, seconds, score, whether it failed,
the ExIt step kind of the row; validation rows have none).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from exit_verl.domains import mle
from exit_verl.verl.rows import FEEDBACK_KEY

SLOT_POLL_S = 0.05


def default_concurrency() -> int:
    return max(1, (os.cpu_count() or 2) // 2)


@contextlib.contextmanager
def run_slot(limit: int, folder: Path | None = None) -> Iterator[None]:
    """One of `limit` machine-wide slots (flock on slot files), held for the block: bounds the
    sandbox runs of every reward worker process of this user together."""
    if limit < 1:
        raise ValueError(f"concurrency must be >= 1, got {limit}")
    folder = folder or Path(tempfile.gettempdir()) / f"exit-verl-mle-slots-{os.getuid()}"
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    while True:
        for i in range(limit):
            fd = os.open(folder / f"slot-{i}.lock", os.O_CREAT | os.O_RDWR, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                continue
            try:
                yield
                return
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
                os.close(fd)
        time.sleep(SLOT_POLL_S)


def feedback_text(error: str | None, chars: int) -> str | None:
    """The end of an error message, at most `chars` characters (tracebacks end with the cause)."""
    if error is None or len(error) <= chars:
        return error
    return "[...]\n" + error[-chars:]


def compute_score(
    data_source: str,
    solution_str: str,
    ground_truth: str,
    extra_info: Any = None,
    *,
    timeout_s: float = 60,
    concurrency: int | None = None,
    memory_mb: int = 2048,
    processes: int = 16,
    file_mb: int = 256,
    workdir_mb: int = 512,
    feedback_chars: int = 1500,
    allow_unsandboxed: bool = False,
    log_path: str | None = None,
    **kwargs: Any,
) -> dict[str, Any]:
    task = mle.get_task(str(ground_truth))
    settings = mle.SandboxSettings(
        memory_mb=memory_mb,
        processes=processes,
        file_mb=file_mb,
        workdir_mb=workdir_mb,
        allow_unsandboxed=allow_unsandboxed,
    )
    with run_slot(concurrency or default_concurrency()):
        result = mle.run(task, mle.extract_code(solution_str), timeout_s, settings)
    if log_path:
        kind = extra_info.get("exit_kind") if isinstance(extra_info, dict) else None
        record = {
            "time": time.time(),
            "seconds": result.seconds,
            "score": result.score,
            "failed": result.error is not None,
            "kind": kind,
        }
        with open(log_path, "a") as f:  # one short append per line: whole lines
            f.write(json.dumps(record) + "\n")
    return {
        "score": result.score,
        FEEDBACK_KEY: feedback_text(result.error, feedback_chars),
        "mle_raw": result.raw,
        "mle_seconds": result.seconds,
    }
