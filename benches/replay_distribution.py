"""How the archive's sampling law spreads replays over a full ExIt buffer (choice of κ).

    python benches/replay_distribution.py [--seeds 3] [--steps 300] [--kappas 1,4,10,20,40]

Simulates the paper's buffer with `exit_verl.TaskArchive` itself, on its math settings
(`--setting math`, Table 4: N = 512, B_min = 128, p = 0.5, 128 prompts x G = 8 rollouts per
step) or its tool-use ones (`tool_use`, Table 5: N = 640, B_min = 320, 16 prompts x 8), with
0/1 rewards:
admission "not_below_min", one child per group (a random response) entering with the
group's S, the replayed parent re-scored with its new group's S. Each buffer entry has a
latent solve rate p: base tasks draw p ~ Beta(0.6, 1.2) (mean 1/3, many unsolved problems,
as for a 3B model on MATH); a child's p moves 30% of the way towards 1 if its response
was right and towards 0 if it was wrong, plus N(0, 0.05) noise. A group of 8 draws
Binomial(8, p) successes, so S ∈ {0, 7, 12, 15, 16}/64.

For each law (rank with temperature 1, and softmax P ∝ exp(κ·S) for several κ) the buffer
evolves under that law; the table averages, over the last 100 steps and the seeds, the
law's distribution P over the resident entries: the share of the 10 most likely entries,
the largest single share, the effective number of entries 1/ΣP², the share of replays per
S level next to the share of entries per S level, and the expected learnability of the
next group drawn from a replayed entry, E_P[(7/8)·p(1 − p)] (the expected population
variance of 8 Bernoulli(p) rewards), against the uniform law's.
"""

from __future__ import annotations

import argparse
import datetime as dt
import platform
import sys

import numpy as np

from exit_verl import TaskArchive

G = 8
# (capacity N, B_min, prompts per step, selection probability p), paper Tables 4 and 5.
SETTINGS = {"math": (512, 128, 128, 0.5), "tool_use": (640, 320, 16, 0.5)}
LEVELS = np.array([0, 7, 12, 15, 16]) / 64
STEP_PULL, STEP_NOISE = 0.3, 0.05


def simulate(
    setting: str, law: str, kappa: float, seed: int, steps: int, window: int
) -> dict[str, dict[str, np.ndarray]]:
    """The law's distribution at the first replay step and averaged over the last steps."""
    N, B_MIN, PROMPTS, P_REPLAY = SETTINGS[setting]  # noqa: N806 - the paper's symbols
    rng = np.random.default_rng(seed)
    if law == "rank":
        arc = TaskArchive(N, prioritization="rank", temperature=1.0, admission="not_below_min")
    else:
        temperature = 1.0 / kappa if kappa > 0 else 1e12  # κ = 0: uniform
        arc = TaskArchive(
            N, prioritization="softmax", temperature=temperature, admission="not_below_min"
        )
    solve_rate: dict[int, float] = {}
    rows, first = [], None
    for step in range(steps):
        if first is None and len(arc) >= B_MIN:
            first = snapshot(arc, solve_rate, step)
        replay = (rng.random(PROMPTS) < P_REPLAY) & (len(arc) >= B_MIN)
        parents = arc.sample(int(replay.sum()), step=step) if replay.any() else []
        p = np.concatenate(
            [
                [solve_rate[int(a)] for a in parents],
                rng.beta(0.6, 1.2, size=PROMPTS - len(parents)),
            ]
        )
        wins = rng.random((PROMPTS, G)) < p[:, None]
        k = wins.sum(axis=1)
        s = k * (G - k) / G**2
        if len(parents):
            last = {int(a): float(x) for a, x in zip(parents, s[: len(parents)], strict=True)}
            arc.update_scores(list(last), list(last.values()))
        pick = rng.integers(0, G, size=PROMPTS)
        right = wins[np.arange(PROMPTS), pick]
        child_p = p + STEP_PULL * (right.astype(float) - p) + rng.normal(0, STEP_NOISE, PROMPTS)
        fresh = -np.ones(PROMPTS - len(parents), dtype=np.int64)
        parent_ids = np.concatenate([np.asarray(parents, dtype=np.int64), fresh])
        ids = arc.add([b"x"] * PROMPTS, s.tolist(), parents=parent_ids, step=step)
        for a, q in zip(ids, np.clip(child_p, 0.0, 1.0), strict=True):
            solve_rate[int(a)] = float(q)
        if step >= steps - window:
            rows.append(snapshot(arc, solve_rate, step + 1))
    assert first is not None
    steady = {key: np.mean([r[key] for r in rows], axis=0) for key in rows[0]}
    return {"first": first, "steady": steady}


def snapshot(arc: TaskArchive, solve_rate: dict[int, float], step: int) -> dict[str, np.ndarray]:
    ids, prob = arc.probabilities(step)
    scores = arc.info(ids)["score"]
    p = np.array([solve_rate[int(a)] for a in ids])
    level = np.abs(scores[:, None] - LEVELS[None, :]).argmin(axis=1)
    top = np.sort(prob)[::-1]
    utility = (1 - 1 / G) * p * (1 - p)
    return {
        "size": np.array(len(ids)),
        "top10": top[:10].sum(),
        "max": top[0],
        "effective": 1.0 / (prob**2).sum(),
        "replay_by_level": np.bincount(level, weights=prob, minlength=len(LEVELS)),
        "buffer_by_level": np.bincount(level, minlength=len(LEVELS)) / len(ids),
        "expected_s": (prob * scores).sum(),
        "next_s": (prob * utility).sum(),
        "next_s_uniform": utility.mean(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--setting", choices=sorted(SETTINGS), default="math")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--window", type=int, default=100)
    parser.add_argument("--kappas", default="1,4,10,20,40")
    args = parser.parse_args()
    kappas = [float(x) for x in args.kappas.split(",")]
    print(
        f"# {dt.date.today()} {platform.machine()} Python {platform.python_version()} "
        f"numpy {np.__version__}: {' '.join(sys.argv)}"
    )
    n, b_min, prompts, p = SETTINGS[args.setting]
    print(
        f"# {args.setting}: N={n} B_min={b_min} {prompts} prompts x G={G}, p={p}, "
        f"{args.steps} steps, last {args.window} averaged, {args.seeds} seeds"
    )
    laws = [("rank", 1.0)] + [("softmax", k) for k in kappas]
    runs = {
        (law, kappa): [
            simulate(args.setting, law, kappa, seed, args.steps, args.window)
            for seed in range(args.seeds)
        ]
        for law, kappa in laws
    }
    for phase, title in (
        ("first", f"at the first replay step (the buffer has just reached B_min = {b_min})"),
        ("steady", f"full buffer, mean over the last {args.window} of {args.steps} steps"),
    ):
        print(f"\n{title}\n")
        header = (
            "| law | entries | top-10 share | max share | effective entries | "
            "replays by S = 0, 7, 12, 15, 16 /64 | entries by S level | E_P[S] | "
            "E_P[next S] (uniform) |"
        )
        print(header)
        print("|---" * (header.count("|") - 1) + "|")
        for law, kappa in laws:
            rows = [run[phase] for run in runs[law, kappa]]
            m = {key: np.mean([r[key] for r in rows], axis=0) for key in rows[0]}
            print(row(law, kappa, m))


def row(law: str, kappa: float, m: dict[str, np.ndarray]) -> str:
    name = "rank, T = 1" if law == "rank" else f"softmax, κ = {kappa:g}"
    by_level = ", ".join(f"{x:.2f}" for x in m["replay_by_level"])
    buffer = ", ".join(f"{x:.2f}" for x in m["buffer_by_level"])
    return (
        f"| {name} | {m['size']:.0f} | {m['top10']:.3f} | {m['max']:.4f} | "
        f"{m['effective']:.0f} | {by_level} | {buffer} | {m['expected_s']:.3f} | "
        f"{m['next_s']:.3f} ({m['next_s_uniform']:.3f}) |"
    )


if __name__ == "__main__":
    main()
