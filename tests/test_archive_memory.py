"""Bounded memory: 1e7 inserts at capacity 1e5 grow resident memory only by the lineage log,
and not at all when the log is compacted with forget_lineage."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

RUN = textwrap.dedent(
    """
    import json, sys
    import numpy as np
    from exit_verl import TaskArchive

    def rss():
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * 4096

    forget = sys.argv[1] == "forget"
    arc = TaskArchive(100_000, seed=0)
    rng = np.random.default_rng(0)
    payloads = [b"p" * 64] * 10_000
    marks = {}
    for batch in range(1_000):
        arc.add(payloads, rng.random(10_000), step=batch)
        if forget and batch % 100 == 99:
            arc.forget_lineage()
        if batch + 1 in (200, 1_000):
            marks[batch + 1] = (rss(), arc.stats()["lineage_bytes"], len(arc))
    print(json.dumps(marks))
    """
)


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["keep", "forget"])
def test_ten_million_inserts_keep_memory_flat(mode: str) -> None:
    out = subprocess.run(
        [sys.executable, "-c", RUN, mode], capture_output=True, text=True, check=True
    ).stdout
    marks = json.loads(out)
    (rss_2m, lineage_2m, n_2m), (rss_10m, lineage_10m, n_10m) = marks["200"], marks["1000"]
    assert n_2m == n_10m == 100_000
    growth = rss_10m - rss_2m  # after warm-up: 2e6 inserts
    lineage_growth = lineage_10m - lineage_2m
    slack = 48 << 20  # allocator noise, not per-insert growth
    if mode == "keep":
        assert lineage_10m >= 10_000_000 * 24  # every id's lineage is kept: 24 B per id
        assert growth <= lineage_growth + slack
    else:
        assert lineage_10m <= 2_000_000 * 24  # ids since the last forget + pinned residents
        assert growth <= slack
