"""eval.json: a run's held-out evaluations, one per set of evaluation settings.

  {<settings>, "base", "trained",            the latest evaluation, at the top level
   "max_training_depth", "trained_steps", "during_training",    from the training job
   "evaluations": [{<settings>, "base", "trained"}, ...]}       every evaluation, latest last

<settings> are the keys of `train.eval_settings` (tasks, iterations, samples, temperature, ...).
An evaluation replaces only the one with the same settings: a greedy and a sampled evaluation
of one run live side by side. A file written before `evaluations` existed holds one evaluation:
its top level.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from exit_verl.durable import write_atomic

EVAL_FILE = "eval.json"
RESULTS = ("base", "trained")
TRAINING = ("max_training_depth", "trained_steps", "during_training")


def read(run_dir: Path) -> dict[str, Any]:
    path = run_dir / EVAL_FILE
    return json.loads(path.read_text()) if path.is_file() else {}


def evaluations(doc: dict[str, Any]) -> list[dict[str, Any]]:
    if "evaluations" in doc:
        return list(doc["evaluations"])
    if any(doc.get(name) for name in RESULTS):
        return [{k: v for k, v in doc.items() if k not in TRAINING}]
    return []


def find(doc: dict[str, Any], settings: dict[str, Any]) -> dict[str, Any] | None:
    """The evaluation of `doc` made with exactly `settings`, or None."""
    return next((e for e in reversed(evaluations(doc)) if _same(e, settings)), None)


def result(doc: dict[str, Any], settings: dict[str, Any]) -> dict[str, Any] | None:
    """The evaluation made with `settings` with the training's figures, shaped like the top
    level, or None."""
    entry = find(doc, settings)
    return None if entry is None else {**entry, **_training(doc)}


def record(
    run_dir: Path,
    settings: dict[str, Any],
    results: dict[str, Any],
    training: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Writes `results` (base and/or trained) under `settings` as the latest evaluation.

    A result missing from `results` is kept from an earlier evaluation with the same settings;
    `training` (depth, steps, validations during training) replaces the file's. Returns the
    file's content. The file is replaced atomically: an interrupted write keeps the old one.
    """
    unknown = set(results) - set(RESULTS)
    if unknown:
        raise KeyError(f"eval.json results are {RESULTS}, got {sorted(unknown)}")
    doc = read(run_dir)
    earlier = find(doc, settings) or {}
    entry = {**settings}
    for name in RESULTS:
        value = results.get(name) or earlier.get(name)
        if value:
            entry[name] = value
    others = [e for e in evaluations(doc) if not _same(e, settings)]
    new = {**entry, **_training(doc), **(training or {}), "evaluations": [*others, entry]}
    write_atomic(run_dir / EVAL_FILE, json.dumps(new, indent=1).encode())
    return new


def _same(entry: dict[str, Any], settings: dict[str, Any]) -> bool:
    return all(entry.get(k) == v for k, v in settings.items())


def _training(doc: dict[str, Any]) -> dict[str, Any]:
    return {k: doc[k] for k in TRAINING if k in doc}
