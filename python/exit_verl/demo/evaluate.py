"""`exit-verl eval`: held-out multi-step self-improvement of a run's policy and of the base model.

The same code path as the evaluation during training: verl's `trainer.val_only=true` job in
trainer mode "exit" with `+exit.val_iterations=K` and `+exit.val_samples=n`, resumed from the
run's latest checkpoint (the trained policy, archive state included) or not resumed at all
(the base model). The base model is re-evaluated only when eval.json has no base result with
the same settings (it does not depend on the run). The result becomes eval.json's latest
evaluation; evaluations with other settings stay in the file (`eval_file`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

from exit_verl.demo import eval_file
from exit_verl.demo import metrics as run_metrics
from exit_verl.demo.command import eval_command, model_path
from exit_verl.demo.config import DemoConfig, load_config
from exit_verl.demo.job import JobFailed, run_logged
from exit_verl.demo.run_folder import CHECKPOINTS, latest_checkpoint
from exit_verl.demo.train import eval_settings
from exit_verl.verl.checkpoint_layout import TRACKER, folder_step


def run_config(run_dir: Path) -> DemoConfig:
    if not (run_dir / "config.yaml").is_file():
        raise FileNotFoundError(f"{run_dir} is not a demo run folder (no config.yaml)")
    return load_config(base=run_dir / "config.yaml")


def evaluate_run(
    run_dir: str | Path,
    iterations: int | None = None,
    samples: int | None = None,
    *,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Evaluates the run's latest checkpoint (and the base model if needed) into eval.json."""
    from exit_verl.demo.plots import plot_run

    run_dir = Path(run_dir).resolve()
    cfg = run_config(run_dir)
    checkpoint = latest_checkpoint(run_dir)
    if checkpoint is None:
        raise FileNotFoundError(f"{run_dir} has no checkpoint ({CHECKPOINTS}/{TRACKER})")
    settings = {"iterations": iterations, "samples": samples}
    changes = {k: v for k, v in settings.items() if v is not None}
    try:
        cfg.eval = dataclasses.replace(cfg.eval, **changes)
    except ValueError as e:
        raise ValueError(str(e)) from None
    wanted = eval_settings(cfg)
    earlier = eval_file.find(eval_file.read(run_dir), wanted) or {}
    step = folder_step(checkpoint)
    log(f"evaluating step {step} of {run_dir.name}: K={cfg.eval.iterations}, n={cfg.eval.samples}")
    results = {"trained": {"step": step, **_validate(cfg, run_dir, checkpoint, "trained", log)}}
    if earlier.get("base"):
        log("base model: reusing the result in eval.json (same settings)")
    else:
        results["base"] = base_result(cfg, run_dir, log=log)
    result = eval_file.record(run_dir, wanted, results)
    plot_run(run_dir)
    return result


def base_result(
    cfg: DemoConfig, run_dir: Path, *, log: Callable[[str], None] = print
) -> dict[str, Any]:
    """The base model (no checkpoint loaded) under the run's evaluation settings."""
    return {"step": 0, **_validate(cfg, run_dir, None, "base", log)}


def _validate(
    cfg: DemoConfig, run_dir: Path, checkpoint: Path | None, name: str, log: Callable[[str], None]
) -> dict[str, Any]:
    logs = run_dir / "logs"
    logs.mkdir(exist_ok=True)
    command = eval_command(cfg, run_dir, model_path(cfg.model), logs / "hydra" / name, checkpoint)
    records: list[dict[str, Any]] = []
    log(f"{name}: verl val_only job, output in {logs / f'eval-{name}.log'}")
    report = run_logged(
        run_dir, f"eval-{name}", command, kind=f"eval-{name}", on_record=records.append
    )
    log(report.summary())
    merged: dict[str, Any] = {}
    for record in records:
        merged.update(record["data"])
    found = run_metrics.self_improvement(merged)
    if found is None:
        raise JobFailed(f"the {name} validation logged no exit_val/ metrics; see {report.log}")
    return found
