"""ExIt vs plain GRPO on the demo: same model, same number of sampled responses per step.

Plain GRPO is the same loop with the archive switched off (p_replay = 0: every prompt is a
fresh base task, no diversity bonus), so the only difference is ExIt's curriculum. Each arm
runs for K seeds; the trained policies are evaluated on the same held-out tasks for the same
number of self-improvement steps, and the per-step means get a 95% t confidence interval.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np

from exit_verl.demo.config import DemoConfig


def confidence_interval(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and 95% half-width over the first axis (seeds)."""
    from scipy.stats import t

    values = np.asarray(values, dtype=float)
    k = values.shape[0]
    mean = values.mean(axis=0)
    if k < 2:
        return mean, np.zeros_like(mean)
    sem = values.std(axis=0, ddof=1) / np.sqrt(k)
    return mean, t.ppf(0.975, k - 1) * sem


def arm_config(cfg: DemoConfig, arm: str, seed: int) -> DemoConfig:
    if arm == "exit":
        return dataclasses.replace(cfg, seed=seed)
    exit_cfg = dataclasses.replace(cfg.exit, p_replay=0.0, diversity_bonus="none")
    return dataclasses.replace(cfg, seed=seed, exit=exit_cfg)


def summarize(per_seed: dict[str, list[list[float]]]) -> dict[str, Any]:
    arms = {}
    for arm, curves in per_seed.items():
        mean, half = confidence_interval(np.array(curves))
        arms[arm] = {"seeds": len(curves), "mean": mean.tolist(), "ci95": half.tolist()}
    return {"arms": arms, "per_seed": per_seed}


def compare(cfg: DemoConfig, seeds: int, out: str | Path, log=print) -> dict[str, Any]:
    from exit_verl.demo.plots import plot_compare
    from exit_verl.demo.train import run

    if seeds < 1:
        raise ValueError("seeds must be >= 1")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    per_seed: dict[str, list[list[float]]] = {"exit": [], "grpo": [], "base": []}
    for seed in range(seeds):
        for arm in ("exit", "grpo"):
            log(f"== compare: {arm}, seed {seed} ==")
            first = arm == "exit" and seed == 0
            config = arm_config(cfg, arm, seed)
            result = run(config, out / f"{arm}-seed{seed}", log=log, eval_base=first)
            per_seed[arm].append(result["trained"]["mean"])
            if first:  # greedy decoding on the fixed held-out set: the same for every run
                per_seed["base"].append(result["base"]["mean"])
        summary = summarize(per_seed)  # rewritten after every seed: partial results survive
        summary["config"] = cfg.to_dict()
        (out / "compare.json").write_text(json.dumps(summary, indent=1))
    (out / "plots").mkdir(exist_ok=True)
    plot_compare(summary, out / "plots" / "compare.png")
    return summary
