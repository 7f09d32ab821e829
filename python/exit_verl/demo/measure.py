"""Runs a command (a verl job) and measures its wall time and the peak memory of its whole
process tree: Ray's GCS, raylet and worker processes are descendants of the driver, so the
tree is the job.

Two sums are sampled: RSS (what `ps` shows; shared library and shared-memory pages are counted
once per process that maps them) and PSS (each shared page split between its users, so the sum
is what the job really holds). RSS is read every `interval` (cheap: `/proc/<pid>/statm`), PSS
every `pss_every` intervals: it needs every process's `smaps`, about 15 ms per verl process,
which sampled every second took a quarter of a core from the job it measures.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import psutil


@dataclass
class Measured:
    returncode: int
    wall_seconds: float
    peak_rss_bytes: int
    peak_pss_bytes: int
    peak_processes: int
    timed_out: bool
    # Peak RSS of each process, labelled with its last Ray actor class or executable name and
    # summed per label (peaks of different processes need not coincide).
    peak_rss_by_kind: dict[str, int] = field(default_factory=dict)

    def summary(self) -> str:
        gib = 1 << 30
        return (
            f"rc={self.returncode} wall={self.wall_seconds:.0f}s "
            f"peak summed RSS={self.peak_rss_bytes / gib:.2f} GiB "
            f"PSS={self.peak_pss_bytes / gib:.2f} GiB processes={self.peak_processes}"
            + (" TIMED OUT" if self.timed_out else "")
        )


def _tree(root: psutil.Process) -> list[psutil.Process]:
    try:
        return [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def _kind(process: psutil.Process) -> str:
    """`ray::WorkerDict`, `ray::TransformersServer`, ... or the executable's name."""
    try:
        cmdline = process.cmdline()
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return "?"
    if not cmdline:
        return "?"
    if cmdline[0].startswith("ray::"):
        return cmdline[0].split(".")[0].split(":")[-1]  # ray::name:Class.method -> Class
    if "-m" in cmdline[1:-1]:
        return f"python -m {cmdline[cmdline.index('-m') + 1]}"
    scripts = [arg for arg in cmdline[1:] if arg.endswith(".py")]
    return Path(scripts[0] if scripts else cmdline[0]).name


def _sample(
    processes: list[psutil.Process], with_pss: bool
) -> tuple[int, int, dict[int, tuple[str, int]]]:
    """Summed RSS, summed PSS (0 unless `with_pss`) and each process's kind and RSS."""
    rss = pss = 0
    kinds: dict[int, tuple[str, int]] = {}
    for process in processes:
        try:
            info = process.memory_full_info() if with_pss else process.memory_info()
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
        rss += info.rss
        pss += getattr(info, "pss", info.rss) if with_pss else 0
        kinds[process.pid] = (_kind(process), info.rss)
    return rss, pss, kinds


def run_measured(
    command: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    cwd: str | os.PathLike[str] | None = None,
    log_path: str | os.PathLike[str],
    timeout: float,
    interval: float = 1.0,
    pss_every: int = 15,
) -> Measured:
    """Runs `command` with stdout+stderr into `log_path`; kills its whole tree on timeout."""
    peak = {"rss": 0, "pss": 0, "n": 0}
    by_pid: dict[int, tuple[str, int]] = {}
    seen: dict[int, psutil.Process] = {}
    start = time.monotonic()
    with Path(log_path).open("wb") as log:
        proc = subprocess.Popen(
            list(command),
            env=dict(env) if env is not None else None,
            cwd=cwd,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        root = psutil.Process(proc.pid)
        done = threading.Event()

        def watch() -> None:
            tick = 0
            while not done.is_set():
                processes = _tree(root)
                for process in processes:
                    seen.setdefault(process.pid, process)
                rss, pss, kinds = _sample(processes, with_pss=tick % pss_every == 0)
                tick += 1
                for pid, (kind, value) in kinds.items():
                    old_kind, old_peak = by_pid.get(pid, (kind, 0))
                    # An idle Ray worker becomes an actor, an exiting one loses its name: keep
                    # the actor's name.
                    keep = kind in ("IDLE", "?") and old_kind not in ("IDLE", "?")
                    by_pid[pid] = (old_kind if keep else kind, max(old_peak, value))
                peak["rss"] = max(peak["rss"], rss)
                peak["pss"] = max(peak["pss"], pss)
                peak["n"] = max(peak["n"], len(processes))
                done.wait(interval)

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        timed_out = False
        try:
            returncode = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            timed_out = True
            returncode = -signal.SIGKILL
        finally:
            done.set()
            watcher.join()
            _kill_leftovers(proc, seen)
    return Measured(
        returncode=returncode,
        wall_seconds=time.monotonic() - start,
        peak_rss_bytes=peak["rss"],
        peak_pss_bytes=peak["pss"],
        peak_processes=peak["n"],
        timed_out=timed_out,
        peak_rss_by_kind=_by_kind(by_pid),
    )


def _by_kind(by_pid: dict[int, tuple[str, int]]) -> dict[str, int]:
    totals: dict[str, int] = {}
    for kind, peak in by_pid.values():
        totals[kind] = totals.get(kind, 0) + peak
    return dict(sorted(totals.items(), key=lambda kv: -kv[1]))


def _kill_leftovers(proc: subprocess.Popen, seen: dict[int, psutil.Process]) -> None:
    """Kills what is left of the job: its session and every process seen in its tree."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    for process in seen.values():
        try:
            process.kill()
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            pass
    proc.wait()
