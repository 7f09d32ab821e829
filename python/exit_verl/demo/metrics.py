"""`metrics.jsonl` of a run, built from verl's tracker records, and the evaluation results in it.

verl's file tracker writes `{"step": N, "data": {...}}` per `Tracking.log` call and opens its
file in write mode, so a resumed job would overwrite the lines of the jobs before it. The demo
gives each job its own tracker file and merges the records into `metrics.jsonl`, one line per
step in verl's format: a training record of a step that an earlier job already logged
replaces it (the resumed job redid that step after the checkpoint), a record without training
metrics (a validation) is merged into the step's line. Earlier lines are never lost; the file
is rewritten atomically after every record.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from exit_verl.durable import write_atomic

TRAINING_KEY = "training/global_step"
_EXIT_VAL = re.compile(r"^exit_val/(\w+)@(\d+)$")
SERIES = ("mean", "accuracy", "best_so_far", "net_corrections", "missing")
SCALARS = ("first_step_accuracy", "final_accuracy", "accuracy_gain", "chains")


class MetricsLog:
    """The run's `metrics.jsonl`, merged per step across jobs."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.steps = read_metrics(path)
        self._this_job: set[int] = set()

    def begin_job(self) -> None:
        self._this_job = set()

    def add(self, record: dict[str, Any]) -> None:
        step, data = int(record["step"]), dict(record["data"])
        if TRAINING_KEY in data and step not in self._this_job:
            self.steps[step] = data  # a step redone after a resume replaces the old line
        else:
            self.steps.setdefault(step, {}).update(data)
        self._this_job.add(step)
        self._write()

    def _write(self) -> None:
        lines = [
            json.dumps({"step": step, "data": self.steps[step]}) for step in sorted(self.steps)
        ]
        write_atomic(self.path, "".join(line + "\n" for line in lines).encode())


def read_metrics(path: Path) -> dict[int, dict[str, Any]]:
    """step -> merged metrics of a `metrics.jsonl` (or of one verl tracker file)."""
    steps: dict[int, dict[str, Any]] = {}
    if path.is_file():
        for line in path.read_text().splitlines():
            if line.strip():
                record = json.loads(line)
                steps.setdefault(int(record["step"]), {}).update(record["data"])
    return steps


def training_steps(steps: dict[int, dict[str, Any]]) -> list[int]:
    return sorted(s for s, m in steps.items() if TRAINING_KEY in m)


def self_improvement(metrics: dict[str, Any]) -> dict[str, Any] | None:
    """The `exit_val/*` metrics of one record as per-step lists (None if it has none)."""
    series: dict[str, dict[int, float]] = {}
    for key, value in metrics.items():
        match = _EXIT_VAL.match(key)
        if match:
            series.setdefault(match.group(1), {})[int(match.group(2))] = float(value)
    if "mean" not in series:
        return None
    k = max(series["mean"])
    out: dict[str, Any] = {"iterations": k}
    for name in SERIES:
        if name in series:
            out[name] = [series[name][t] for t in range(k + 1)]
    for name in SCALARS:
        if f"exit_val/{name}" in metrics:
            out[name] = float(metrics[f"exit_val/{name}"])
    return out


def evaluations(steps: dict[int, dict[str, Any]]) -> dict[int, dict[str, Any]]:
    """step -> self-improvement results, for every step that was evaluated."""
    found = {s: self_improvement(m) for s, m in steps.items()}
    return {s: r for s, r in sorted(found.items()) if r is not None}


def max_training_depth(steps: dict[int, dict[str, Any]]) -> int:
    """The deepest iteration depth of any prompt trained on (`exit/depth_max`)."""
    return int(max((m.get("exit/depth_max", 0) for m in steps.values()), default=0))
