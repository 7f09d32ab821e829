"""verl's checkpoint folder layout and ExIt's files in it (standard library only).

<trainer.default_local_dir>/
    latest_checkpointed_iteration.txt     verl's tracker: the step to resume from
    global_step_N/                        one folder per save: verl's actor/, data.pt, ...
        exit_archive.snap, exit_state.json    ExIt's files (checkpoint_files)
        exit_reference/                       a reset reference policy (reference), if any
"""

from __future__ import annotations

import os
from pathlib import Path

TRACKER = "latest_checkpointed_iteration.txt"
STEP_FOLDER = "global_step_"
ARCHIVE_FILE = "exit_archive.snap"
STATE_FILE = "exit_state.json"
REFERENCE_FOLDER = "exit_reference"
# ExIt's entries in a checkpoint folder, in the order a save writes them.
EXIT_FILES = (ARCHIVE_FILE, STATE_FILE, REFERENCE_FOLDER)


def step_folder(root: str | os.PathLike[str], step: int) -> Path:
    return Path(root, f"{STEP_FOLDER}{step}")


def folder_step(folder: str | os.PathLike[str]) -> int:
    """N of a `global_step_N` folder; ValueError for any other name."""
    name = Path(folder).name
    if not name.startswith(STEP_FOLDER) or not name[len(STEP_FOLDER) :].isdigit():
        raise ValueError(f"not a verl checkpoint folder (global_step_N): {folder}")
    return int(name[len(STEP_FOLDER) :])


def step_folders(root: str | os.PathLike[str]) -> list[Path]:
    """The `global_step_N` folders in `root`, by step."""
    found = [f for f in Path(root).glob(f"{STEP_FOLDER}*") if f.name[len(STEP_FOLDER) :].isdigit()]
    return sorted(found, key=folder_step)


def tracked_step(root: str | os.PathLike[str]) -> int | None:
    """The step verl's tracker file in `root` names, or None when there is none."""
    try:
        return int(Path(root, TRACKER).read_text().strip())
    except (FileNotFoundError, ValueError):
        return None


def latest_checkpoint(root: str | os.PathLike[str]) -> Path | None:
    """The folder verl resumes from in `root` (its tracker's step), if it exists."""
    step = tracked_step(root)
    if step is None:
        return None
    folder = step_folder(root, step)
    return folder if folder.is_dir() else None
