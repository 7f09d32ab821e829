"""ExIt's files in verl's checkpoint folders, kept and pruned by verl's own retention rule.

`global_step_N/exit_archive.snap` (the archive snapshot) and `global_step_N/exit_state.json`
(curriculum RNG, cursor and counters) are written before verl writes its tracker file
`latest_checkpointed_iteration.txt`, so the tracker only ever names folders that hold them.
verl's checkpoint managers keep at most `max_ckpt_to_keep` of the checkpoints saved by the
running process (`BaseCheckpointManager.ensure_checkpoint_capacity` before a save,
`register_checkpoint` after); the same two methods prune ExIt's files here, with the limit verl
applies to the actor (`trainer.max_actor_ckpt_to_keep`, or 1 under the deprecated
`trainer.remove_previous_ckpt_in_save`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from verl.utils.checkpoint.checkpoint_manager import BaseCheckpointManager

from exit_verl.verl.controller import ARCHIVE_FILE, STATE_FILE


def max_actor_checkpoints(trainer_config: Any) -> int | None:
    """The actor's retention limit as `PPOTrainer._save_checkpoint` resolves it."""
    if trainer_config.get("remove_previous_ckpt_in_save", False):
        return 1
    return trainer_config.get("max_actor_ckpt_to_keep", None)


class ExItCheckpointFiles(BaseCheckpointManager):
    """Only verl's retention bookkeeping of `BaseCheckpointManager` (no model, no process
    group): `previous_saved_paths` are the checkpoint folders this process wrote ExIt files to.
    """

    def __init__(self) -> None:  # noqa: D107 — the base class wants a model and a process group
        self.previous_saved_paths: list[str] = []

    def remove_previous_save_local_path(self, path: str | list[str]) -> None:
        for folder in [path] if isinstance(path, str) else path:
            for name in (ARCHIVE_FILE, STATE_FILE):
                Path(folder, name).unlink(missing_ok=True)

    def save(self, controller: Any, folder: str, max_keep: int | None) -> None:
        self.ensure_checkpoint_capacity(max_keep)
        controller.save(folder)
        self.register_checkpoint(folder, max_keep)
