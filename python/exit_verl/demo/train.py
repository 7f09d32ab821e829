"""`exit-verl demo`: ExIt GRPO through verl's own trainer on CPU, then plots and eval.json.

One verl job (`command.train_command`): stock `verl.trainer.main_ppo` in trainer mode "exit"
with `VERL_PLATFORM=cpu`. It validates the base model before training (step 0) and the trained
policy after the last step, both with multi-step self-improvement on the fixed held-out tasks
(`exit_val/*`). A run folder that already holds checkpoints is resumed from the latest one.

Run folder:
  config.yaml              the settings (reloaded, then overridden, when the run is resumed)
  train.parquet, heldout.parquet   verl datasets
  metrics.jsonl            one line per step, verl's tracker format, merged across resumes
  eval.json                held-out self-improvement of the base model and of the policy
  plots/*.png              training curves and the evaluation
  checkpoints/             verl's: latest_checkpointed_iteration.txt, global_step_N/ (actor,
                           data.pt, exit_archive.snap, exit_state.json)
  logs/                    verl's output per job, tracker files, hydra's folders
  jobs.jsonl               wall time, peak memory and load of every verl job
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from exit_verl.demo import eval_file
from exit_verl.demo import metrics as run_metrics
from exit_verl.demo.command import model_path, train_command
from exit_verl.demo.config import DemoConfig
from exit_verl.demo.domains import DOMAINS
from exit_verl.demo.job import JobReport, run_logged
from exit_verl.demo.progress import StepProgress
from exit_verl.demo.run_folder import latest_checkpoint
from exit_verl.verl.checkpoint_layout import folder_step


def next_job_number(logs: Path) -> int:
    return 1 + sum(1 for _ in logs.glob("train-*.log"))


def run_demo(
    cfg: DemoConfig,
    out: str | Path,
    *,
    log: Callable[[str], None] = print,
    progress: bool = True,
) -> dict[str, Any]:
    """Trains (or resumes) into `out`, then writes eval.json and the plots; returns eval.json."""
    out = Path(out).resolve()
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} is a file")
    write_task_files(cfg, out, log)
    latest = latest_checkpoint(out)
    start = folder_step(latest) if latest else 0
    cfg.to_yaml(out / "config.yaml")
    if start >= cfg.steps:
        log(f"{out} is already trained to step {start} (steps={cfg.steps}): nothing to train")
    else:
        logs = out / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        number = next_job_number(logs)
        model = model_path(cfg.model)
        command = train_command(
            cfg, out, model, logs / "hydra" / f"train-{number}", resuming=latest is not None
        )
        what = f"resuming at step {start + 1}" if latest else "training"
        log(f"{what}: verl main_ppo (exit mode, CPU), output in {logs / f'train-{number}.log'}")
        report = _train_job(cfg, out, command, f"train-{number}", start, progress)
        log(report.summary())
    return write_eval_and_plots(out, cfg)


def write_task_files(cfg: DemoConfig, out: Path, log: Callable[[str], None] = print) -> None:
    """The run's train.parquet and heldout.parquet for its domain."""
    DOMAINS[cfg.domain].task_files(cfg, out, log)


def _train_job(
    cfg: DemoConfig, out: Path, command: list[str], name: str, start: int, progress: bool
) -> JobReport:
    metrics = run_metrics.MetricsLog(out / "metrics.jsonl")
    metrics.begin_job()
    bar = StepProgress(cfg.steps, start, f"ExIt ({cfg.preset})", enabled=progress)

    def on_record(record: dict[str, Any]) -> None:
        metrics.add(record)
        bar.on_record(record)

    try:
        return run_logged(
            out,
            name,
            command,
            kind="train",
            steps=[start + 1, cfg.steps],
            on_record=on_record,
            on_tick=bar.tick,
        )
    finally:
        bar.close()


def write_eval_and_plots(out: Path, cfg: DemoConfig) -> dict[str, Any]:
    """eval.json from the run's validations (base: step 0, trained: the latest), then plots.

    Evaluations of the run with other settings (`exit-verl eval --samples 4`, say) are kept."""
    from exit_verl.demo.plots import plot_run

    steps = run_metrics.read_metrics(out / "metrics.jsonl")
    found = run_metrics.evaluations(steps)
    results: dict[str, Any] = {}
    if 0 in found:
        results["base"] = {"step": 0, **found[0]}
    trained = [s for s in found if s > 0]
    if trained:
        results["trained"] = {"step": trained[-1], **found[trained[-1]]}
    training = {
        "max_training_depth": run_metrics.max_training_depth(steps),
        "trained_steps": max(run_metrics.training_steps(steps), default=0),
        "during_training": {str(s): found[s] for s in trained},
    }
    result = eval_file.record(out, eval_settings(cfg), results, training)
    plot_run(out)
    return result


def eval_settings(cfg: DemoConfig) -> dict[str, Any]:
    return {
        "tasks": cfg.eval.tasks,
        "iterations": cfg.eval.iterations,
        "samples": cfg.eval.samples,
        "temperature": cfg.eval.temperature if cfg.eval.samples > 1 else 0.0,
        "task_steps": cfg.task_steps,
        "max_new_tokens": cfg.max_new_tokens,
        "model": cfg.model,
        "domain": cfg.domain,
        **DOMAINS[cfg.domain].eval_settings(cfg),
    }
