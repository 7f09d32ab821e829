"""PNG plots of a demo run (read back from its files) and of a comparison.

Run plots come from verl's metrics (`metrics.jsonl`), the latest checkpoint's archive and
eval.json: reward.png, archive.png, learnability.png, depth.png, timing.png, eval.png.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from exit_verl.demo.metrics import read_metrics, training_steps

TIMING_PARTS = (  # verl's timing_s/* keys of one step, in the order a step runs them
    ("gen", "generate (+ reward)"),
    ("old_log_prob", "old log-probs"),
    ("adv", "advantages (+ ExIt observe)"),
    ("update_actor", "update"),
    ("update_weights", "weight sync"),
    ("save_checkpoint", "checkpoint"),
)


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _integer_ticks(ax, y: bool = False) -> None:
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    if y:
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))


def plot_run(run_dir: str | Path) -> list[Path]:
    """Writes the run's plots into run_dir/plots; returns their paths."""
    run_dir = Path(run_dir)
    plots = run_dir / "plots"
    plots.mkdir(exist_ok=True)
    steps_all = read_metrics(run_dir / "metrics.jsonl")
    trained = training_steps(steps_all)
    rows = [steps_all[s] for s in trained]
    steps = np.array(trained)
    col = lambda key: np.array([r.get(key, np.nan) for r in rows], dtype=float)  # noqa: E731
    written = []
    if len(rows):
        written += [
            _reward(plots, steps, col),
            _archive(plots, steps, col, run_dir),
            _learnability(plots, steps, col),
            _depth(plots, steps, col),
            _timing(plots, steps, col),
        ]
    eval_path = run_dir / "eval.json"
    if eval_path.is_file():
        written.append(plot_eval(json.loads(eval_path.read_text()), plots / "eval.png"))
    return written


def _reward(plots: Path, steps, col) -> Path:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot(steps, col("critic/score/mean"), "o-", label="task reward (mean)")
    ax.plot(steps, col("critic/score/max"), ".:", alpha=0.6, label="task reward (max)")
    ax.plot(steps, col("critic/rewards/mean"), "s--", alpha=0.6, label="training reward (mean)")
    ax.set(xlabel="training step", ylabel="reward", title="Reward per step (verl critic/*)")
    ax.legend(fontsize=8)
    return _save(fig, plots / "reward.png")


def _archive(plots: Path, steps, col, run_dir: Path) -> Path:
    from exit_verl.archive import TaskArchive
    from exit_verl.demo.run_folder import latest_checkpoint
    from exit_verl.verl.checkpoint_layout import ARCHIVE_FILE, folder_step

    plt = _pyplot()
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(9, 3.5))
    a1.plot(steps, col("exit/archive_size"), "o-", label="archive size")
    a1.plot(steps, col("exit/children_added"), "^:", label="children added")
    ax_r = a1.twinx()
    ax_r.plot(steps, col("exit/replay_fraction"), "s--", color="tab:red", label="replay fraction")
    ax_r.set_ylim(-0.05, 1.05)
    ax_r.set_ylabel("replay fraction")
    a1.set(xlabel="training step", ylabel="entries", title="Archive")
    lines = a1.get_legend_handles_labels()
    more = ax_r.get_legend_handles_labels()
    a1.legend(lines[0] + more[0], lines[1] + more[1], fontsize=8, loc="upper left")
    checkpoint = latest_checkpoint(run_dir)
    snap = checkpoint / ARCHIVE_FILE if checkpoint else None
    if snap is not None and snap.is_file():
        archive = TaskArchive.load(snap)
        if len(archive):
            depths = archive.lineage(archive.ids())["depth"]
            bins = np.arange(depths.max() + 2) - 0.5
            a2.hist(depths, bins=bins, rwidth=0.8)
        a2.set(title=f"Archive at step {folder_step(checkpoint)}: depths")
    a2.set(xlabel="depth of archived history", ylabel="entries")
    return _save(fig, plots / "archive.png")


def _learnability(plots: Path, steps, col) -> Path:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot(steps, col("exit/learnability_mean"), "o-", label="batch learnability S (mean)")
    ax.plot(steps, col("exit/archive_score_mean"), "s-", label="archive score (mean)")
    ax.plot(steps, col("exit/informative_fraction"), "^:", label="groups with S > 0")
    ax.set(xlabel="training step", ylabel="S = variance of rewards", title="Learnability")
    ax.legend(fontsize=8)
    return _save(fig, plots / "learnability.png")


def _depth(plots: Path, steps, col) -> Path:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot(steps, col("exit/depth_mean"), "o-", label="mean depth of the batch")
    ax.plot(steps, col("exit/depth_max"), "^:", label="deepest prompt of the batch")
    ax.plot(steps, col("exit/archive_depth_max"), "s--", label="deepest archived")
    ax.plot(steps, col("exit/diverge_fraction"), "x-.", label="diverge fraction")
    _integer_ticks(ax, y=True)
    ax.set(xlabel="training step", ylabel="iteration depth", title="Self-iteration depth")
    ax.legend(fontsize=8)
    return _save(fig, plots / "depth.png")


def _timing(plots: Path, steps, col) -> Path:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 3.5))
    bottom = np.zeros(len(steps))
    for key, label in TIMING_PARTS:
        values = np.nan_to_num(col(f"timing_s/{key}"))
        if values.any():
            ax.bar(steps, values, bottom=bottom, label=label)
            bottom += values
    ax.plot(steps, col("timing_s/step"), "k.", label="whole step")
    ax.set(xlabel="training step", ylabel="seconds", title="Where a step goes (verl timing_s/*)")
    ax.legend(fontsize=7)
    return _save(fig, plots / "timing.png")


def plot_eval(result: dict[str, Any], path: Path) -> Path:
    """Held-out accuracy and mean reward per self-improvement step, and net corrections."""
    plt = _pyplot()
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 3.8))
    for name, color in (("base", "tab:grey"), ("trained", "tab:blue")):
        r = result.get(name)
        if not r:
            continue
        t = np.arange(len(r["mean"]))
        label = f"{name} (step {r.get('step', '?')})"
        a1.plot(t, r["accuracy"], "o-", color=color, label=f"{label}: accuracy")
        a1.plot(t, r["mean"], "s--", color=color, alpha=0.6, label=f"{label}: mean reward")
        a2.plot(t, r["net_corrections"], "o-", color=color, label=label)
    depth = result.get("max_training_depth")
    if depth:
        a1.axvline(depth, color="black", lw=0.8, ls=":", label="deepest depth trained on")
    samples = result.get("samples", 1)
    a1.set(
        xlabel="self-improvement step",
        ylabel="held-out score",
        title=f"{result.get('tasks', '?')} held-out tasks, avg@{samples}",
    )
    a1.set_ylim(-0.02, 1.02)
    a1.legend(fontsize=7)
    a2.axhline(0, color="black", lw=0.6)
    a2.set(
        xlabel="self-improvement step",
        ylabel="wrong→right − right→wrong (cumulative)",
        title="Net corrections",
    )
    a2.legend(fontsize=7)
    return _save(fig, path)


ARM_STYLES = {
    "grpo": ("tab:orange", "s--"),
    "curriculum": ("tab:purple", "v-."),
    "improve": ("tab:green", "D-"),
    "diverge": ("tab:brown", "P-"),
    "exit": ("tab:blue", "o-"),
    "base": ("tab:grey", "^:"),
}


def plot_compare(summary: dict[str, Any], path: Path) -> Path:
    """Per arm: held-out accuracy and net corrections per step, mean ± 95% t-interval."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(14, 4))
    panels = (
        ("mean", "held-out reward"),
        ("accuracy", "held-out accuracy"),
        ("net_corrections", "net corrections"),
    )
    for ax, (metric, label) in zip(axes, panels, strict=True):
        for arm, s in summary["arms"].items():
            color, style = ARM_STYLES.get(arm, ("black", "x-"))
            mean = np.array(s[metric]["mean"])
            half = np.array(s[metric]["ci95"])
            t = np.arange(len(mean))
            ax.plot(t, mean, style, color=color, label=f"{arm} (n={s['seeds']})")
            ax.fill_between(t, mean - half, mean + half, color=color, alpha=0.15)
        ax.set(xlabel="self-improvement step", ylabel=f"{label} (mean, 95% CI)", title=label)
        ax.legend(fontsize=7)
    depth = summary.get("max_training_depth")
    if depth:
        for ax in axes:
            ax.axvline(depth, color="black", lw=0.8, ls=":")
    fig.suptitle("Multi-step self-improvement on held-out tasks", fontsize=10)
    return _save(fig, path)


def _save(fig, path: Path) -> Path:
    for ax in fig.axes:  # steps, depths and iterations are whole numbers
        _integer_ticks(ax)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    import matplotlib.pyplot as plt

    plt.close(fig)
    return path
