"""The demo's tasks as verl datasets: train and held-out parquet files in verl's row layout.

A row is what verl's `RLHFDataset` reads: `prompt` (chat messages), `data_source`,
`reward_model.ground_truth` (the answer the reward function receives) and `extra_info`. The
held-out file is the fixed split of `tasks.is_heldout` drawn with one seed for every run, so
every run, arm and seed is validated on the same tasks.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path

from exit_verl.demo.tasks import make_tasks
from exit_verl.durable import write_atomic

HELDOUT_SEED = 0
TRAIN_FILE = "train.parquet"
HELDOUT_FILE = "heldout.parquet"


def rows(tasks: list[dict]) -> list[dict]:
    return [
        {
            "data_source": t["data_source"],
            "prompt": [{"role": "user", "content": t["prompt"]}],
            "ability": "math",
            "reward_model": {"style": "rule", "ground_truth": t["answer"]},
            "extra_info": {"index": i, "id": t["id"], "expression": t["expression"]},
        }
        for i, t in enumerate(tasks)
    ]


def task_files(
    folder: Path,
    *,
    train_tasks: int,
    heldout_tasks: int,
    seed: int,
    task_steps: Sequence[int],
) -> dict[str, Path]:
    """Writes (or checks) `train.parquet` and `heldout.parquet` in `folder`.

    Files already there must hold the same tasks: a resumed run trains on the tasks it
    started with (ValueError otherwise, and nothing is written).
    """
    wanted = {
        TRAIN_FILE: rows(make_tasks(train_tasks, "train", seed, task_steps)),
        HELDOUT_FILE: rows(make_tasks(heldout_tasks, "heldout", HELDOUT_SEED, task_steps)),
    }
    return write_checked(folder, wanted)


def write_checked(folder: Path, wanted: dict[str, list[dict]]) -> dict[str, Path]:
    """Writes each file of `wanted` (name -> verl rows) unless it exists; an existing file must
    hold the same tasks (ValueError otherwise, and nothing is written)."""
    import pandas as pd

    frames = {name: pd.DataFrame(records) for name, records in wanted.items()}
    for name, frame in frames.items():
        path = folder / name
        if path.is_file() and _tasks_of(pd.read_parquet(path)) != _tasks_of(frame):
            raise ValueError(
                f"{path} holds other tasks than these settings give (train_tasks, task_steps, "
                "seed, eval.tasks changed?): use a new --out folder"
            )
    folder.mkdir(parents=True, exist_ok=True)
    for name, frame in frames.items():
        if not (folder / name).is_file():
            buffer = io.BytesIO()
            frame.to_parquet(buffer)
            write_atomic(folder / name, buffer.getvalue())
    return {"train": folder / TRAIN_FILE, "heldout": folder / HELDOUT_FILE}


def _tasks_of(frame) -> list[tuple[str, str]]:
    return [
        (str(p[-1]["content"]), str(r["ground_truth"]))
        for p, r in zip(frame["prompt"], frame["reward_model"], strict=True)
    ]
