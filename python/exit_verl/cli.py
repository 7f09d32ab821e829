"""`exit-verl`: the CPU main job (demo), its evaluation and the ExIt-vs-GRPO comparison."""

from __future__ import annotations

import argparse
import os
import sys

THREADS_HELP = "torch CPU threads (default 2; use 1 when other jobs share the cores)"


def _config(args: argparse.Namespace):
    """The YAML config (or the defaults) with the command-line overrides applied."""
    from exit_verl.demo.config import DemoConfig

    cfg = DemoConfig.from_yaml(args.config) if args.config else DemoConfig()
    for name in ("steps", "seed", "threads"):
        value = getattr(args, name, None)
        if value is not None:
            setattr(cfg, name, value)
    cfg.validate()
    return cfg


def _demo(args: argparse.Namespace) -> None:
    from exit_verl.demo.train import run

    result = run(_config(args), args.out)
    for name in ("base", "trained"):
        means = " ".join(f"{m:.3f}" for m in result[name]["mean"])
        print(f"{name:8} held-out reward per improvement step: {means}")


def _eval(args: argparse.Namespace) -> None:
    from exit_verl.demo.train import evaluate_run

    result = evaluate_run(args.run, args.iterations)
    for name in ("base", "trained"):
        means = " ".join(f"{m:.3f}" for m in result[name]["mean"])
        print(f"{name:8} held-out reward per improvement step: {means}")


def _compare(args: argparse.Namespace) -> None:
    from exit_verl.demo.compare import compare

    summary = compare(_config(args), args.seeds, args.out)
    for arm, s in summary["arms"].items():
        cells = " ".join(f"{m:.3f}±{h:.3f}" for m, h in zip(s["mean"], s["ci95"], strict=True))
        print(f"{arm:5} (n={s['seeds']}): {cells}")


def main(argv: list[str] | None = None) -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    parser = argparse.ArgumentParser(prog="exit-verl", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    demo = sub.add_parser("demo", help="ExIt GRPO on SmolLM2-135M on CPU, then evaluate and plot")
    demo.add_argument("--steps", type=int, default=None, help="training steps (default 30)")
    demo.add_argument("--out", default="runs/demo", help="run folder (default runs/demo)")
    demo.add_argument("--seed", type=int, default=None)
    demo.add_argument("--config", default=None, help="YAML file of settings (see examples/)")
    demo.add_argument("--threads", type=int, default=None, help=THREADS_HELP)
    demo.set_defaults(func=_demo)

    ev = sub.add_parser("eval", help="multi-step self-improvement eval of a finished run")
    ev.add_argument("--run", required=True, help="run folder written by `exit-verl demo`")
    ev.add_argument("--iterations", type=int, default=None, help="improvement steps T")
    ev.set_defaults(func=_eval)

    cmp = sub.add_parser("compare", help="ExIt vs plain GRPO over several seeds, with 95% CIs")
    cmp.add_argument("--seeds", type=int, default=3)
    cmp.add_argument("--steps", type=int, default=None)
    cmp.add_argument("--out", default="runs/compare")
    cmp.add_argument("--config", default=None)
    cmp.add_argument("--threads", type=int, default=None, help=THREADS_HELP)
    cmp.set_defaults(func=_compare)

    args = parser.parse_args(argv)
    try:
        args.func(args)
    except (ValueError, KeyError, FileNotFoundError) as e:
        print(f"exit-verl: error: {e}", file=sys.stderr)
        raise SystemExit(2) from None


if __name__ == "__main__":
    main()

__all__ = ["main"]
