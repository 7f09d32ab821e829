"""`run_measured`: peak memory summed over a job's process tree, and the tree killed on timeout."""

from __future__ import annotations

import sys
import time

from deps import need

psutil = need("psutil")

from exit_verl.demo.measure import run_measured  # noqa: E402

CHILD_HOLDS_300MB = """
import subprocess, sys
code = "b = bytearray(300 << 20); import time; time.sleep(4)"
sys.exit(subprocess.run([sys.executable, "-c", code]).returncode)
"""

ORPHAN = """
import subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
print(child.pid, flush=True)
time.sleep(120)
"""


def test_peak_memory_includes_child_processes(tmp_path) -> None:
    measured = run_measured(
        [sys.executable, "-c", CHILD_HOLDS_300MB],
        log_path=tmp_path / "log.txt",
        timeout=60,
        interval=0.2,
        pss_every=2,
    )
    assert measured.returncode == 0 and not measured.timed_out
    assert measured.peak_rss_bytes >= 300 << 20
    assert measured.peak_pss_bytes >= 290 << 20
    assert measured.peak_processes >= 2


def test_pss_is_read_only_every_pss_every_samples(tmp_path) -> None:
    measured = run_measured(  # PSS read once, at the start, before the child allocates
        [sys.executable, "-c", CHILD_HOLDS_300MB],
        log_path=tmp_path / "log.txt",
        timeout=60,
        interval=0.2,
        pss_every=10**6,
    )
    assert measured.peak_rss_bytes >= 300 << 20
    assert measured.peak_pss_bytes < 300 << 20


def test_timeout_kills_the_whole_tree(tmp_path) -> None:
    measured = run_measured(
        [sys.executable, "-c", ORPHAN], log_path=tmp_path / "log.txt", timeout=5, interval=0.2
    )
    assert measured.timed_out and measured.returncode != 0
    grandchild = int((tmp_path / "log.txt").read_text().split()[0])
    deadline = time.monotonic() + 10
    while psutil.pid_exists(grandchild) and time.monotonic() < deadline:
        time.sleep(0.1)
    alive = psutil.pid_exists(grandchild) and psutil.Process(grandchild).status() != "zombie"
    assert not alive
