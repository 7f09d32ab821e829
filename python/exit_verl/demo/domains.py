"""The demo's task domains, one table: each domain's setting defaults, task files, reward
function and extra verl overrides.

`DemoConfig.domain` names a row of `DOMAINS`. A domain's `defaults` are merged right after the
dataclass defaults (`config.load_config`), so a saved run, `--config` and `key=value` still
override them; its `exit` node replaces the default one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from exit_verl.demo import mle_data, tool_use

if TYPE_CHECKING:
    from exit_verl.demo.config import DemoConfig

Log = Callable[[str], None]
REWARD_FILE = Path(__file__).with_name("reward_fn.py")
MLE_REWARD_FILE = Path(__file__).parents[1] / "verl" / "mle_reward.py"


@dataclass(frozen=True)
class DemoDomain:
    name: str
    summary: str  # for --help
    # Writes (or checks) the run's train.parquet and heldout.parquet.
    task_files: Callable[[DemoConfig, Path, Log], None]
    reward_file: Path  # verl's custom reward function, unless `reward` names another file
    defaults: dict[str, Any] = field(default_factory=dict)
    verl_overrides: Callable[[DemoConfig, Path], list[str]] = lambda cfg, run_dir: []
    eval_settings: Callable[[DemoConfig], dict[str, Any]] = lambda cfg: {}


def _arithmetic_files(cfg: DemoConfig, out: Path, log: Log) -> None:
    from exit_verl.demo.data import task_files

    task_files(
        out,
        train_tasks=cfg.train_tasks,
        heldout_tasks=cfg.eval.tasks,
        seed=cfg.seed,
        task_steps=cfg.task_steps,
    )


def _tool_use_files(cfg: DemoConfig, out: Path, log: Log) -> None:
    from exit_verl.demo.data import HELDOUT_FILE, TRAIN_FILE, write_checked

    both = tool_use.task_rows(cfg.train_tasks, cfg.eval.tasks)
    write_checked(out, {TRAIN_FILE: both["train"], HELDOUT_FILE: both["heldout"]})


def _mle_files(cfg: DemoConfig, out: Path, log: Log) -> None:
    mle_data.check_sandbox(cfg.mle.allow_unsandboxed, log)
    heldout = cfg.mle.heldout[: cfg.eval.tasks]
    mle_data.mle_task_files(out, train=cfg.mle.train, heldout=heldout, timeout_s=cfg.mle.timeout_s)


DOMAINS: dict[str, DemoDomain] = {
    d.name: d
    for d in (
        DemoDomain(
            "arithmetic",
            "generated arithmetic (default)",
            _arithmetic_files,
            REWARD_FILE,
        ),
        DemoDomain(
            "tool_use",
            "BFCL multi-turn tool use",
            _tool_use_files,
            REWARD_FILE,
            defaults=tool_use.DEMO_DEFAULTS,
            verl_overrides=lambda cfg, run_dir: tool_use.verl_overrides(),
        ),
        DemoDomain(
            "mle",
            "ML engineering, scripts run in a sandbox",
            _mle_files,
            MLE_REWARD_FILE,
            defaults=mle_data.DEMO_DEFAULTS,
            verl_overrides=lambda cfg, run_dir: mle_data.reward_overrides(cfg.mle, run_dir),
            eval_settings=lambda cfg: {"competitions": cfg.mle.heldout[: cfg.eval.tasks]},
        ),
    )
}
