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


def compare_table(summary: dict[str, Any]) -> str:
    """Table-1-style markdown: per arm, held-out mean reward at steps 0..K and accuracy,
    each mean ± 95% t-interval half-width over seeds, then the per-seed values."""
    arms = summary["arms"]
    if not arms:
        return "(no finished runs)"
    k = len(next(iter(arms.values()))["mean"]["mean"]) - 1
    header = (
        ["arm", "n"]
        + [f"mean@{t}" for t in range(k + 1)]
        + ["first-step acc", f"acc@{k}", "acc gain", f"net corr@{k}"]
    )
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for arm, s in arms.items():
        n = s["seeds"]
        series = [
            _cell({"mean": s["mean"]["mean"][t], "ci95": s["mean"]["ci95"][t]}, n)
            for t in range(k + 1)
        ]
        net = {"mean": s["net_corrections"]["mean"][-1], "ci95": s["net_corrections"]["ci95"][-1]}
        row = [
            arm,
            str(n),
            *series,
            _cell(s["first_step_accuracy"], n),
            _cell(s["final_accuracy"], n),
            _cell(s["accuracy_gain"], n, "{:+.3f}"),
            _cell(net, n, "{:+.2f}"),
        ]
        lines.append("| " + " | ".join(row) + " |")
    lines += ["", "per seed (mean@0..K | first-step acc, acc@K | net corr@K):"]
    for arm, s in arms.items():
        for r in s["per_seed"]:
            means = " ".join(f"{m:.3f}" for m in r["mean"])
            lines.append(
                f"  {arm:10} seed {r.get('seed', '-')}: {means} | "
                f"{r['first_step_accuracy']:.3f}, {r['final_accuracy']:.3f} | "
                f"{r['net_corrections'][-1]:+.2f}"
            )
    return "\n".join(lines)
