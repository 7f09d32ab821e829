"""One verl job of the demo: a subprocess with its own Ray cluster, measured and followed.

The job runs under `exit_verl.demo.measure.run_measured` (wall time, peak memory summed
over its whole process tree) in a background thread, its output going to a log file; the
calling thread follows verl's file tracker (`VERL_FILE_LOGGER_PATH`, one JSON line per
`Tracking.log` call, unbuffered) and hands each record to `on_record` as it appears, which is
what drives the progress bar and `metrics.jsonl`.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from exit_verl.demo.measure import Measured
from exit_verl.verl.cpu import job_env

Record = dict[str, Any]  # {"step": int, "data": {metric: value}}


JOB_TIMEOUT = 6 * 3600


class JobFailed(RuntimeError):
    """A verl job ended with a non-zero return code (its log names the cause)."""


@dataclass
class JobReport(Measured):
    """`run_measured`'s figures of one job (its process tree) and where and when it ran."""

    name: str = ""
    log: str = ""
    started: str = ""
    load_before: tuple[float, float, float] = (0.0, 0.0, 0.0)
    load_after: tuple[float, float, float] = (0.0, 0.0, 0.0)
    # The calling process (progress bar, files), which the measured tree does not include.
    parent_peak_rss_bytes: int = 0

    @property
    def total_peak_rss_bytes(self) -> int:
        return self.peak_rss_bytes + self.parent_peak_rss_bytes

    def summary(self) -> str:
        gib = 1 << 30
        return (
            f"{self.name}: rc={self.returncode} wall={self.wall_seconds:.0f}s "
            f"peak summed RSS={self.total_peak_rss_bytes / gib:.2f} GiB "
            f"(PSS {self.peak_pss_bytes / gib:.2f} GiB, {self.peak_processes} processes) "
            f"load {self.load_before[0]:.1f}->{self.load_after[0]:.1f}"
        )


class TrackerFollower:
    """Complete lines appended to verl's tracker file since the last call."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = 0
        self.partial = b""

    def read(self) -> list[Record]:
        try:
            with self.path.open("rb") as f:
                f.seek(self.offset)
                chunk = f.read()
        except FileNotFoundError:
            return []
        self.offset += len(chunk)
        data = self.partial + chunk
        *lines, self.partial = data.split(b"\n")
        return [json.loads(line) for line in lines if line.strip()]


def run_job(
    name: str,
    command: Sequence[str],
    *,
    log_path: Path,
    tracker_path: Path,
    cwd: Path,
    on_record: Callable[[Record], None],
    timeout: float,
    on_tick: Callable[[], None] | None = None,
    poll_seconds: float = 1.0,
) -> JobReport:
    """Runs `command`, calling `on_record` for every tracker record; returns its report.

    KeyboardInterrupt ends the job's whole process tree before it propagates.
    """
    from exit_verl.demo.measure import run_measured

    tracker_path.unlink(missing_ok=True)  # verl opens it in write mode anyway
    log_path.parent.mkdir(parents=True, exist_ok=True)
    started = time.strftime("%Y-%m-%d %H:%M:%S")
    load_before = os.getloadavg()
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["measured"] = run_measured(
                command, env=job_env(tracker_path), cwd=cwd, log_path=log_path, timeout=timeout
            )
        except BaseException as e:  # surfaced in the calling thread
            box["error"] = e

    thread = threading.Thread(target=target, name=f"verl-{name}", daemon=True)
    follower = TrackerFollower(tracker_path)
    thread.start()
    try:
        while thread.is_alive():
            thread.join(poll_seconds)
            for record in follower.read():
                on_record(record)
            if on_tick is not None:
                on_tick()
    except KeyboardInterrupt:
        _end_children()
        thread.join()
        raise
    for record in follower.read():
        on_record(record)
    if "error" in box:
        raise box["error"]
    return JobReport(
        **asdict(box["measured"]),
        name=name,
        log=str(log_path),
        started=started,
        load_before=load_before,
        load_after=os.getloadavg(),
        parent_peak_rss_bytes=_own_peak_rss(),
    )


def run_logged(
    run_dir: Path,
    name: str,
    command: Sequence[str],
    *,
    kind: str,
    on_record: Callable[[Record], None],
    on_tick: Callable[[], None] | None = None,
    **extra: Any,
) -> JobReport:
    """`run_job` with the run folder's layout: output in `logs/<name>.log`, verl's tracker in
    `logs/<name>.tracker.jsonl`, one line in `jobs.jsonl`; JobFailed if verl failed."""
    logs = run_dir / "logs"
    report = run_job(
        name,
        command,
        log_path=logs / f"{name}.log",
        tracker_path=logs / f"{name}.tracker.jsonl",
        cwd=run_dir,
        on_record=on_record,
        on_tick=on_tick,
        timeout=JOB_TIMEOUT,
    )
    failed = report.returncode != 0
    append_report(run_dir / "jobs.jsonl", report, kind=kind, failed=failed, **extra)
    if failed:
        raise JobFailed(
            f"verl exited with code {report.returncode}; see {report.log}\n"
            + log_tail(Path(report.log))
        )
    return report


def append_report(path: Path, report: JobReport, **extra: Any) -> None:
    """One JSON line per job in `jobs.jsonl` (the run's budget record)."""
    line = {**asdict(report), "total_peak_rss_bytes": report.total_peak_rss_bytes, **extra}
    with path.open("a") as f:
        f.write(json.dumps(line) + "\n")


def log_tail(path: Path, lines: int = 25) -> str:
    try:
        text = path.read_text(errors="replace")
    except FileNotFoundError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def _own_peak_rss() -> int:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # kB on Linux


def _end_children() -> None:
    """Kills the sessions of this process's children (the job runs in its own session)."""
    import psutil

    for child in psutil.Process().children():
        try:
            os.killpg(child.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
