"""`exit-verl compare`: columns of the paper's ablation ladder × seeds, through the same demo.

Each arm is an `exit.preset` (grpo, curriculum, improve, diverge, exit: `ExItConfig.preset`),
run as `exit-verl demo` with every other setting equal, for seeds 0..K−1 (the seed draws the
training tasks, the curriculum's RNG and verl's data order). Every run ends with the held-out
multi-step self-improvement evaluation on the same fixed tasks; the base model is evaluated
once (by the first run, before it trains). Per arm and improvement step: mean over seeds and
the half-width of the 95% t-interval. A run folder that already finished is reused, one that
stopped part-way is resumed from its checkpoint, so an interrupted comparison continues;
`report_only` summarizes the finished runs without starting any job (the table's `n` column
says how many seeds each arm has).

Outputs in `--out`: `<arm>-seed<s>/` (demo runs), compare.json, compare.md (the table),
plots/compare.png.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from exit_verl.demo import eval_file
from exit_verl.demo.config import DemoConfig

SERIES = ("mean", "accuracy", "best_so_far", "net_corrections")
SCALARS = ("first_step_accuracy", "final_accuracy", "accuracy_gain")


def parse_arms(text: str) -> list[str]:
    from exit_verl.presets import preset_values

    arms = [a.strip() for a in text.split(",") if a.strip()]
    if not arms:
        raise ValueError("--arms is empty")
    if len(set(arms)) != len(arms):
        raise ValueError(f"--arms lists an arm twice: {text}")
    for arm in arms:
        preset_values(arm, "math")  # ValueError naming the known presets
    return arms


def confidence_interval(values: Sequence[Sequence[float]] | Sequence[float]) -> tuple[Any, Any]:
    """Mean over the first axis (seeds) and the 95% t-interval half-width (0 for one seed)."""
    from scipy.stats import t

    values = np.asarray(values, dtype=float)
    k = values.shape[0]
    mean = values.mean(axis=0)
    if k < 2:
        return mean, np.zeros_like(mean)
    sem = values.std(axis=0, ddof=1) / np.sqrt(k)
    return mean, t.ppf(0.975, k - 1) * sem


def arm_config(cfg: DemoConfig, arm: str, seed: int, evaluate_base: bool) -> DemoConfig:
    return dataclasses.replace(
        cfg,
        seed=seed,
        exit={**cfg.exit, "preset": arm},
        eval=dataclasses.replace(cfg.eval, before_train=evaluate_base),
    )


def summarize(per_seed: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    """Mean and 95% t-interval per arm of every series and scalar of the seeds' evaluations."""
    arms: dict[str, Any] = {}
    for arm, results in per_seed.items():
        if not results:
            continue
        entry: dict[str, Any] = {"seeds": len(results), "per_seed": results}
        for name in SERIES:
            mean, half = confidence_interval([r[name] for r in results])
            entry[name] = {"mean": mean.tolist(), "ci95": half.tolist()}
        for name in SCALARS:
            mean, half = confidence_interval([r[name] for r in results])
            entry[name] = {"mean": float(mean), "ci95": float(half)}
        arms[arm] = entry
    return {"arms": arms}


def _finished(run_dir: Path, cfg: DemoConfig) -> dict[str, Any] | None:
    """The run's evaluation under the comparison's settings, if it is of the last step."""
    from exit_verl.demo.train import eval_settings

    result = eval_file.result(eval_file.read(run_dir), eval_settings(cfg))
    if not result or (result.get("trained") or {}).get("step") != cfg.steps:
        return None
    return result


def _check_same_settings(run_dir: Path, cfg: DemoConfig) -> None:
    from omegaconf import OmegaConf

    saved = run_dir / "config.yaml"
    if not saved.is_file():
        return
    old = OmegaConf.to_container(OmegaConf.load(saved))
    new = OmegaConf.to_container(OmegaConf.structured(cfg))
    assert isinstance(old, dict) and isinstance(new, dict)
    old.pop("eval", None)  # eval.before_train differs between the runs of a comparison
    new.pop("eval", None)
    if old != new:
        raise ValueError(f"{run_dir} holds a run with other settings: use a new --out")


def compare(
    cfg: DemoConfig,
    arms: Sequence[str],
    seeds: int,
    out: Path,
    *,
    progress: bool = True,
    report_only: bool = False,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    from exit_verl.demo.evaluate import base_result, evaluate_run
    from exit_verl.demo.plots import plot_compare
    from exit_verl.demo.train import run_demo

    if seeds < 1:
        raise ValueError(f"seeds must be >= 1, got {seeds}")
    out = Path(out).resolve()
    runs = [(arm, seed) for seed in range(seeds) for arm in arms]
    configs = {
        (arm, seed): arm_config(cfg, arm, seed, evaluate_base=(arm, seed) == runs[0])
        for arm, seed in runs
    }
    for (arm, seed), run_cfg in configs.items():  # refuse a mixed-up folder before any job
        _check_same_settings(out / f"{arm}-seed{seed}", run_cfg)
    out.mkdir(parents=True, exist_ok=True)
    per_seed: dict[str, list[dict[str, Any]]] = {arm: [] for arm in arms}
    base: dict[str, Any] | None = None
    summary: dict[str, Any] = {}
    for i, (arm, seed) in enumerate(runs):
        run_dir = out / f"{arm}-seed{seed}"
        run_cfg = configs[(arm, seed)]
        result = _finished(run_dir, run_cfg)
        if result is None and report_only:
            log(f"== compare {i + 1}/{len(runs)}: {arm}, seed {seed}: not finished, left out")
            continue
        if result is None:
            log(f"== compare {i + 1}/{len(runs)}: {arm}, seed {seed} -> {run_dir}")
            run_demo(run_cfg, run_dir, log=log, progress=progress)
            # None: trained, but stopped during its final validation
            result = _finished(run_dir, run_cfg) or evaluate_run(run_dir, log=log)
        else:
            log(f"== compare {i + 1}/{len(runs)}: {arm}, seed {seed}: finished earlier, reused")
        if i == 0:
            base = result.get("base") or base_result(run_cfg, run_dir, log=log)
        trained = result["trained"]
        per_seed[arm].append({"seed": seed, "step": trained["step"], **_pick(trained)})
        depth = max(int(result.get("max_training_depth", 0)), summary.get("max_training_depth", 0))
        summary = {
            **summarize({**per_seed, "base": [_pick(base)] if base else []}),
            "max_training_depth": depth,
            "settings": _settings(cfg, arms, seeds, result),
        }
        # Rewritten after every run: an interrupted comparison keeps its finished runs.
        (out / "compare.json").write_text(json.dumps(summary, indent=1))
    if not summary:
        raise ValueError(f"{out} holds no finished run of these arms and seeds")
    (out / "plots").mkdir(exist_ok=True)
    plot_compare(summary, out / "plots" / "compare.png")
    from exit_verl.demo.report import compare_table

    table = compare_table(summary)
    (out / "compare.md").write_text(table + "\n")
    print(table)
    return summary


def _pick(result: dict[str, Any]) -> dict[str, Any]:
    return {name: result[name] for name in (*SERIES, *SCALARS)}


def _settings(cfg: DemoConfig, arms: Sequence[str], seeds: int, result: dict) -> dict[str, Any]:
    from omegaconf import OmegaConf

    from exit_verl.demo.train import eval_settings

    return {
        "arms": list(arms),
        "seeds": seeds,
        "eval": {k: result.get(k) for k in eval_settings(cfg)},
        "config": OmegaConf.to_container(OmegaConf.structured(cfg)),
    }
