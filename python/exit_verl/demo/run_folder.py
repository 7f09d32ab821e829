"""Where a demo run keeps verl's checkpoints, and the one verl resumes from."""

from __future__ import annotations

from pathlib import Path

from exit_verl.verl import checkpoint_layout

CHECKPOINTS = "checkpoints"  # trainer.default_local_dir of every job of the run


def checkpoints(run_dir: Path) -> Path:
    return run_dir / CHECKPOINTS


def latest_checkpoint(run_dir: Path) -> Path | None:
    """verl's latest `global_step_N` folder of a run, from its tracker file."""
    return checkpoint_layout.latest_checkpoint(checkpoints(run_dir))
