"""ExIt's files in verl's checkpoint folders: written before verl's, pruned after verl's tracker.

A save writes `global_step_N/exit_archive.snap` then `global_step_N/exit_state.json` (the state
names the archive's checksum, so the two are one unit), then verl writes the actor, `data.pt`
and, last, its tracker `latest_checkpointed_iteration.txt`. Only then are ExIt files of older
checkpoints pruned, with the limit verl applies to the actor (`trainer.max_actor_ckpt_to_keep`,
or 1 under the deprecated `trainer.remove_previous_ckpt_in_save`), and never in a folder at or
after the step the tracker names: whatever moment a save is interrupted at, the folder the
tracker names still holds its ExIt files. (verl itself prunes the previous actor before it
writes the tracker; `check_resumable` turns that case into a message naming the folder to
resume from.) A reset reference policy (`exit_reference/`) is one of ExIt's files.

With `trainer.default_hdfs_dir`, ExIt's files are also copied to
`<default_hdfs_dir>/global_step_N/` with verl's `hdfs_io` (as verl's Megatron checkpoint
manager copies the actor there; a local path works too). verl resumes from local folders
only, and so does ExIt.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

from exit_verl.verl.checkpoint_layout import (
    ARCHIVE_FILE,
    EXIT_FILES,
    REFERENCE_FOLDER,
    STATE_FILE,
    folder_step,
    step_folders,
    tracked_step,
)


def max_actor_checkpoints(trainer_config: Any) -> int | None:
    """The actor's retention limit as `PPOTrainer._save_checkpoint` resolves it."""
    if trainer_config.get("remove_previous_ckpt_in_save", False):
        return 1
    return trainer_config.get("max_actor_ckpt_to_keep", None)


class ExItCheckpointFiles:
    """The checkpoint folders this process wrote ExIt files to, pruned by verl's rule."""

    def __init__(self) -> None:
        self.saved: list[Path] = []

    def after_save(self, folder: str | os.PathLike[str], max_keep: int | None) -> None:
        """Call once verl's save of `folder` returned: keeps the newest `max_keep` folders'
        ExIt files (all when `max_keep` is None or < 1), pruning only folders older than the
        step verl's tracker names."""
        folder = Path(folder)
        self.saved = [f for f in self.saved if f != folder] + [folder]
        if not max_keep or max_keep < 1:
            return
        tracked = tracked_step(folder.parent)
        while len(self.saved) > max_keep:
            oldest = self.saved[0]
            if tracked is None or folder_step(oldest) >= tracked:
                return
            for name in (ARCHIVE_FILE, STATE_FILE):
                Path(oldest, name).unlink(missing_ok=True)
            shutil.rmtree(Path(oldest, REFERENCE_FOLDER), ignore_errors=True)
            self.saved.pop(0)


def check_resumable(folder: str | os.PathLike[str]) -> None:
    """ValueError when verl is about to resume from a folder without its actor checkpoint
    (a save interrupted after verl pruned it), naming the newest folder to resume from."""
    folder = Path(folder)
    if (folder / "actor").is_dir():
        return
    complete = [
        f
        for f in step_folders(folder.parent)
        if (f / "actor").is_dir() and (f / STATE_FILE).is_file()
    ]
    hint = "no folder holds both"
    if complete:
        newest = complete[-1]
        hint = (
            f"the newest folder with both is {newest}: resume it with "
            f"trainer.resume_mode=resume_path trainer.resume_from_path={newest}"
        )
    raise ValueError(
        f"verl resumes from {folder}, which has no actor checkpoint (a save was interrupted "
        f"after verl pruned it, before its tracker named the new step); {hint}"
    )


def copy_to_remote(folder: str | os.PathLike[str], remote_root: str, step: int) -> list[str]:
    """Copies ExIt's files of a checkpoint folder to `<remote_root>/global_step_<step>/` with
    verl's `hdfs_io` (hdfs:// or local paths); OSError when a copy fails."""
    from verl.utils import hdfs_io

    remote = os.path.join(remote_root, f"global_step_{step}")
    hdfs_io.makedirs(remote, exist_ok=True)
    copied = []
    for name in EXIT_FILES:
        source = Path(folder, name)
        if not source.exists():
            continue
        target = os.path.join(remote, name)
        kwargs = {"dirs_exist_ok": True} if source.is_dir() else {}
        if hdfs_io.copy(str(source), target, **kwargs) is False:
            raise OSError(f"copying {source} to {target} failed")
        copied.append(target)
    return copied
