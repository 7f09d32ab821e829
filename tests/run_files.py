"""Readers of a demo run folder's files, shared by the end-to-end tests."""

from __future__ import annotations

import json
from pathlib import Path


def step_metrics(run: Path) -> dict[int, dict]:
    """`metrics.jsonl` by step (records of one step merged, later values win)."""
    steps: dict[int, dict] = {}
    for line in (run / "metrics.jsonl").read_text().splitlines():
        record = json.loads(line)
        steps.setdefault(record["step"], {}).update(record["data"])
    return steps
