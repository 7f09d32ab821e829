"""Plain-text summaries printed by the CLI: one run's evaluation."""

from __future__ import annotations

from typing import Any


def eval_lines(result: dict[str, Any]) -> list[str]:
    header = (
        f"held-out self-improvement: {result.get('tasks')} tasks, K={result.get('iterations')}, "
        f"avg@{result.get('samples')} (step t improves step t-1's answer)"
    )
    lines = [header]
    for name in ("base", "trained"):
        r = result.get(name)
        if not r:
            continue
        means = " ".join(f"{m:.3f}" for m in r["mean"])
        accs = " ".join(f"{a:.3f}" for a in r["accuracy"])
        lines.append(
            f"  {name:7} (step {r['step']}): mean {means} | accuracy {accs} | "
            f"net corrections {r['net_corrections'][-1]:+.2f} | "
            f"first-step accuracy {r['first_step_accuracy']:.3f}"
        )
    return lines


def print_eval(result: dict[str, Any]) -> None:
    print("\n".join(eval_lines(result)))


def _cell(stat: dict[str, Any], n: int, fmt: str = "{:.3f}") -> str:
    mean, half = stat["mean"], stat["ci95"]
    if n < 2:
        return fmt.format(mean)
    return f"{fmt.format(mean)} ± {fmt.replace('+', '').format(half)}"  # a half-width has no sign


def _step_cell(arm: dict[str, Any], series: str, t: int, fmt: str = "{:.3f}") -> str:
    stat = {"mean": arm[series]["mean"][t], "ci95": arm[series]["ci95"][t]}
    return _cell(stat, arm["seeds"], fmt)


def compare_table(summary: dict[str, Any]) -> str:
    """Table-1-style markdown: per arm, held-out accuracy at steps 0..K, mean reward at steps
    0 and K and net corrections after K steps, each mean ± 95% t-interval half-width over
    seeds, then the per-seed values."""
    arms = summary["arms"]
    if not arms:
        return "(no finished runs)"
    k = len(next(iter(arms.values()))["accuracy"]["mean"]) - 1
    header = (
        ["arm", "n"] + [f"acc@{t}" for t in range(k + 1)] + ["mean@0", f"mean@{k}", f"net corr@{k}"]
    )
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for arm, s in arms.items():
        row = [
            arm,
            str(s["seeds"]),
            *(_step_cell(s, "accuracy", t) for t in range(k + 1)),
            _step_cell(s, "mean", 0),
            _step_cell(s, "mean", k),
            _step_cell(s, "net_corrections", k, "{:+.2f}"),
        ]
        lines.append("| " + " | ".join(row) + " |")
    lines += ["", "per seed (acc@0..K | mean@0, mean@K | net corr@K):"]
    for arm, s in arms.items():
        for r in s["per_seed"]:
            accs = " ".join(f"{a:.3f}" for a in r["accuracy"])
            lines.append(
                f"  {arm:10} seed {r.get('seed', '-')}: {accs} | "
                f"{r['mean'][0]:.3f}, {r['mean'][-1]:.3f} | "
                f"{r['net_corrections'][-1]:+.2f}"
            )
    return "\n".join(lines)
