"""PNG plots of a demo run (read back from its files) and of an ExIt-vs-GRPO comparison."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _read_metrics(run_dir: Path) -> list[dict[str, Any]]:
    path = run_dir / "metrics.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _integer_ticks(ax, y: bool = False) -> None:
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    if y:
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))


def _smooth(y: np.ndarray, window: int = 5) -> np.ndarray:
    if len(y) < window:
        return y
    kernel = np.ones(window) / window
    padded = np.concatenate([np.full(window - 1, y[0]), y])
    return np.convolve(padded, kernel, mode="valid")


def plot_run(run_dir: str | Path) -> list[Path]:
    """Writes reward, archive, learnability, depth and eval plots into run_dir/plots."""
    from exit_verl.archive import TaskArchive

    plt = _pyplot()
    run_dir = Path(run_dir)
    plots = run_dir / "plots"
    plots.mkdir(exist_ok=True)
    rows = _read_metrics(run_dir)
    steps = np.array([r["step"] for r in rows])
    col = lambda key: np.array([r.get(key, np.nan) for r in rows], dtype=float)  # noqa: E731
    written = []

    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot(steps, col("reward_mean"), "o-", alpha=0.4, label="raw reward (mean)")
    ax.plot(steps, _smooth(col("reward_mean")), "-", lw=2, label="raw reward (5-step mean)")
    ax.plot(steps, col("shaped_reward_mean"), ".", alpha=0.6, label="shaped reward (mean)")
    ax.set(xlabel="training step", ylabel="reward", title="Reward per step")
    ax.legend(fontsize=8)
    written.append(_save(fig, plots / "reward.png"))

    archive = TaskArchive.load(run_dir / "archive.snap")
    depths = archive.lineage(archive.ids())["depth"] if len(archive) else np.array([])
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(9, 3.5))
    a1.plot(steps, col("archive_size"), "o-")
    a1.set(xlabel="training step", ylabel="entries", title="Archive size")
    if len(depths):
        bins = np.arange(depths.max() + 2) - 0.5
        a2.hist(depths, bins=bins, rwidth=0.8)
    a2.set(xlabel="depth of archived history", ylabel="entries", title="Final archive depths")
    written.append(_save(fig, plots / "archive.png"))

    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot(steps, col("learnability_mean"), "o-", label="batch learnability (mean)")
    ax.plot(steps, col("archive_score_mean"), "s-", label="archive score (mean)")
    ax.set(xlabel="training step", ylabel="variance of normalized returns", title="Learnability")
    ax.legend(fontsize=8)
    written.append(_save(fig, plots / "learnability.png"))

    fig, ax = plt.subplots(figsize=(6, 3.5))
    for s, r in zip(steps, rows, strict=True):
        d = r.get("depths", [])
        ax.scatter([s] * len(d), d, s=12, alpha=0.35, color="tab:blue")
    ax.plot(steps, col("depth_mean"), "-", color="tab:orange", label="mean depth of batch")
    ax.plot(steps, col("archive_depth_max"), "--", color="tab:green", label="deepest archived")
    _integer_ticks(ax, y=True)
    ax.set(xlabel="training step", ylabel="iteration depth", title="Lineage depth over time")
    ax.legend(fontsize=8)
    written.append(_save(fig, plots / "depth.png"))

    eval_path = run_dir / "eval.json"
    if eval_path.is_file():
        written.append(plot_eval(json.loads(eval_path.read_text()), plots / "eval.png"))
    return written


def plot_eval(result: dict[str, Any], path: Path) -> Path:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 3.5))
    for name, color in (("base", "tab:grey"), ("trained", "tab:blue")):
        if name not in result:
            continue
        t = np.arange(len(result[name]["mean"]))
        ax.plot(t, result[name]["mean"], "o-", color=color, label=f"{name}: mean")
        ax.plot(
            t,
            result[name]["best_so_far"],
            "--",
            color=color,
            alpha=0.6,
            label=f"{name}: best so far",
        )
    depth = result.get("max_training_depth")
    if depth is not None:
        ax.axvline(depth, color="black", lw=0.8, ls=":", label="deepest depth trained on")
    ax.set(xlabel="self-improvement step", ylabel="held-out reward", title="Multi-step eval")
    ax.legend(fontsize=8)
    return _save(fig, path)


def plot_compare(summary: dict[str, Any], path: Path) -> Path:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 3.8))
    arms = (("exit", "tab:blue", "o-"), ("grpo", "tab:orange", "s--"), ("base", "tab:grey", "^:"))
    for arm, color, style in arms:  # distinct markers keep overlapping curves visible
        if arm not in summary["arms"]:
            continue
        s = summary["arms"][arm]
        t = np.arange(len(s["mean"]))
        mean, half = np.array(s["mean"]), np.array(s["ci95"])
        ax.plot(t, mean, style, color=color, label=f"{arm} (n={s['seeds']})")
        ax.fill_between(t, mean - half, mean + half, color=color, alpha=0.2)
    ax.set(
        xlabel="self-improvement step",
        ylabel="held-out reward (mean, 95% CI)",
        title="ExIt vs GRPO: multi-step self-improvement",
    )
    ax.legend(fontsize=8)
    return _save(fig, path)


def _save(fig, path: Path) -> Path:
    for ax in fig.axes:  # steps, depths and iterations are whole numbers
        _integer_ticks(ax)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    fig.clf()
    import matplotlib.pyplot as plt

    plt.close(fig)
    return path
