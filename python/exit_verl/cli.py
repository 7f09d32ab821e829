"""`exit-verl`: the CPU main job (demo), its evaluation and the comparison of the paper's ladder.

Every command runs stock `python -m verl.trainer.main_ppo` in trainer mode "exit" on the CPU
path (docs/demo.md). Settings: `--config FILE` (YAML) and `key=value` overrides, as in verl.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

SETTINGS_HELP = (
    "settings as key=value (OmegaConf dotlist, like verl's overrides): e.g. steps=2 "
    "exit.p_replay=0.3 eval.iterations=6 (keys: python/exit_verl/demo/config.py)"
)


def _settings(args: argparse.Namespace, base: Path | None = None):
    """Defaults ← the run's saved config (resume) ← --config ← flags ← key=value overrides."""
    from exit_verl.demo.config import load_config

    overrides = list(args.overrides)
    for flag in ("steps", "model", "seed", "domain"):
        value = getattr(args, flag, None)
        if value is not None:
            overrides.insert(0, f"{flag}={value}")
    return load_config(base=base, config_file=args.config, overrides=overrides)


def _demo(args: argparse.Namespace) -> None:
    from exit_verl.demo.report import print_eval
    from exit_verl.demo.train import run_demo

    out = Path(args.out)
    saved = out / "config.yaml"
    cfg = _settings(args, base=saved if saved.is_file() else None)
    result = run_demo(cfg, out, progress=not args.no_progress)
    print_eval(result)
    print(f"outputs: {out}/ (metrics.jsonl, eval.json, plots/, checkpoints/, logs/)")


def _eval(args: argparse.Namespace) -> None:
    from exit_verl.demo.evaluate import evaluate_run
    from exit_verl.demo.report import print_eval

    print_eval(evaluate_run(args.run, args.iterations, args.samples))


def _compare(args: argparse.Namespace) -> None:
    from exit_verl.demo.compare import compare, parse_arms

    arms = parse_arms(args.arms)
    cfg = _settings(args)
    out, progress = Path(args.out), not args.no_progress
    compare(cfg, arms, args.seeds, out, progress=progress, report_only=args.report_only)


def _add_settings(parser: argparse.ArgumentParser, default_out: str) -> None:
    parser.add_argument("--out", default=default_out, help=f"output folder (default {default_out})")
    parser.add_argument("--config", default=None, help="YAML file of settings (examples/cpu_*)")
    parser.add_argument("--steps", type=int, default=None, help="training steps")
    parser.add_argument("--model", default=None, help="smollm2 (default), tiny, or an HF folder")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument(
        "--domain", default=None, help="task domain: arithmetic (default), tool_use or mle"
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help=SETTINGS_HELP)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="exit-verl", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    demo = sub.add_parser(
        "demo",
        help="ExIt GRPO with verl's trainer on CPU (SmolLM2-135M, LoRA), then eval and plots",
        description="Trains (or resumes the run in --out), evaluates and plots.",
    )
    _add_settings(demo, "runs/demo")
    demo.set_defaults(func=_demo)

    ev = sub.add_parser(
        "eval",
        help="multi-step self-improvement of a run's policy and of the base model",
        description="verl validation (trainer.val_only) on the run's latest checkpoint.",
    )
    ev.add_argument("--run", required=True, help="run folder written by `exit-verl demo`")
    ev.add_argument("--iterations", type=int, default=None, help="improvement steps K")
    ev.add_argument("--samples", type=int, default=None, help="chains per task (avg@n)")
    ev.set_defaults(func=_eval)

    cmp = sub.add_parser(
        "compare",
        help="presets of the paper's ladder x seeds, mean and 95%% t-intervals",
        description="Runs the demo per arm (exit.preset) and seed, then a Table-1-style summary.",
    )
    _add_settings(cmp, "runs/compare")
    cmp.add_argument("--arms", default="grpo,improve,exit", help="presets, comma-separated")
    cmp.add_argument("--seeds", type=int, default=3)
    cmp.add_argument(
        "--report-only",
        action="store_true",
        help="summarize the finished runs in --out without starting any job",
    )
    cmp.set_defaults(func=_compare)
    return parser


def main(argv: list[str] | None = None) -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    parser = build_parser()
    # Overrides may come before or after the flags: unknown key=value tokens are overrides.
    args, extra = parser.parse_known_args(argv)
    stray = [item for item in extra if item.startswith("-") or "=" not in item]
    if stray or (extra and not hasattr(args, "overrides")):
        parser.error(f"unrecognized arguments: {' '.join(stray or extra)}")
    if extra:
        args.overrides = [*args.overrides, *extra]
    from exit_verl.demo.job import JobFailed

    try:
        args.func(args)
    except (ValueError, KeyError, FileNotFoundError) as e:
        message = str(e.args[0]) if e.args else str(e)
        print(f"exit-verl: error: {' '.join(message.split())}", file=sys.stderr)
        raise SystemExit(2) from None
    except JobFailed as e:
        print(f"exit-verl: {e}", file=sys.stderr)
        raise SystemExit(1) from None
    except KeyboardInterrupt:
        print("exit-verl: interrupted", file=sys.stderr)
        raise SystemExit(130) from None


if __name__ == "__main__":
    main()

__all__ = ["build_parser", "main"]
