"""`run(task, code, timeout_s)`: one solution script, sandboxed, graded, normalized.

The score is the competition's metric normalized by its fixed worst/best range to [0, 1], and
0 when the run failed. `error` says why it failed, in words the policy can act on: the
script's exception trace (the end of its stderr), a timeout, a memory or CPU limit, a missing
or malformed submission. It is truncated to the end (`SandboxSettings.output_chars`).
"""

from __future__ import annotations

import re
import signal
from dataclasses import dataclass

from exit_verl.domains.mle.grading import SubmissionError
from exit_verl.domains.mle.sandbox import ProcessResult, SandboxSettings, execute
from exit_verl.domains.mle.tasks import Task

_FENCE = re.compile(r"```[ \t]*(?:python|py|python3)?[ \t]*\n(.*?)(?:```|\Z)", re.S | re.I)


@dataclass(frozen=True)
class RunResult:
    score: float  # in [0, 1]; 0 when the run failed
    raw: float | None  # the metric value, None when nothing could be scored
    error: str | None  # why it failed (None: a valid submission was scored)
    seconds: float  # wall time of the script
    output: str  # the end of the script's stdout
    sandboxed: bool


def extract_code(response: str) -> str:
    """The script in a model response: its last fenced code block (an unclosed fence runs to
    the end), or the whole response when it has no fence."""
    blocks = _FENCE.findall(response)
    return blocks[-1] if blocks else response


def run(
    task: Task, code: str, timeout_s: float = 60, settings: SandboxSettings | None = None
) -> RunResult:
    """Runs one solution script for `task` in the sandbox and grades its submission.

    Raises `SandboxUnavailable` where no sandbox can run (and running without one was not
    allowed by name), ValueError for bad arguments; a failing script is a result, not an error.
    """
    if not isinstance(code, str):
        raise ValueError("code must be a string")
    settings = settings or SandboxSettings()
    process = execute(code, task.public, timeout_s, settings, private=task.private)
    failure = _failure(process, timeout_s, settings)
    if failure is not None:
        return _failed(process, failure, settings)
    assert process.submission is not None
    try:
        raw = task.grade_bytes(process.submission, settings.submission_mb << 20)
    except SubmissionError as e:
        return _failed(process, f"Invalid submission: {e}", settings)
    return RunResult(
        score=task.normalize(raw),
        raw=raw,
        error=None,
        seconds=process.seconds,
        output=process.stdout,
        sandboxed=process.sandboxed,
    )


def _failure(process: ProcessResult, timeout_s: float, settings: SandboxSettings) -> str | None:
    """Why the process produced nothing gradable, with its stderr; None if it did."""
    stderr = process.stderr.rstrip()
    if process.returncode is None:
        head = f"Timeout: the script was still running after {timeout_s:g} s and was killed."
    elif process.returncode != 0:
        head = _exit_reason(process.returncode, stderr, settings)
    elif process.submission is None:
        head = "No predictions: the script finished without writing submission.csv."
    else:
        return None
    return f"{head}\n{stderr}" if stderr else head


def _exit_reason(code: int, stderr: str, settings: SandboxSettings) -> str:
    if "MemoryError" in stderr or "Unable to allocate" in stderr:
        return f"Out of memory (the limit is {settings.memory_mb} MiB per process)."
    if code > 128:
        number = code - 128
        reasons = {
            signal.SIGXCPU: "CPU time limit exceeded.",
            signal.SIGXFSZ: f"File size limit ({settings.file_mb} MiB) exceeded.",
            signal.SIGKILL: "Killed (SIGKILL).",
            signal.SIGSEGV: "Segmentation fault.",
        }
        if number in reasons:
            return reasons[number]
        try:
            return f"Killed by signal {signal.Signals(number).name}."
        except ValueError:
            pass
    return f"The script failed with exit status {code}."


def _failed(process: ProcessResult, error: str, settings: SandboxSettings) -> RunResult:
    if len(error) > settings.output_chars:
        error = "[... cut ...]\n" + error[-settings.output_chars :]
    return RunResult(
        score=0.0,
        raw=None,
        error=error,
        seconds=process.seconds,
        output=process.stdout,
        sandboxed=process.sandboxed,
    )
