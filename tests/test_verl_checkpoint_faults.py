"""A checkpoint is a unit: a save interrupted at any point resumes from the last complete
checkpoint, exactly as an uninterrupted run continues, or stops with a message naming what
does not fit — never a run on a mixed state.

verl's real trainer drives `fit` (tests/verl_fit_harness.py); the process "dies" at one point
of the step-2 save: an exception no handler catches (`Killed`) stops it there, then a new
trainer resumes from the checkpoint folder as a restarted job would.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from deps import need

need("ray")
need("verl")

import torch  # noqa: E402
import verl_fit_harness as harness  # noqa: E402

from exit_verl.verl import checkpoint_files, controller  # noqa: E402
from exit_verl.verl.checkpoint_layout import ARCHIVE_FILE, STATE_FILE  # noqa: E402
from exit_verl.verl.controller import ExItController  # noqa: E402

pytestmark = [pytest.mark.usefixtures("transfer_queue_on_ray"), pytest.mark.slow]

STEPS = 3
KILLED_AT = 2  # the save that is interrupted


class Killed(BaseException):
    """The process stops here: no `except Exception` handler runs."""


def compose(data, work: Path, *overrides: str):
    return harness.compose(
        work,
        data["model"],
        str(data["train"]),
        str(data["val"]),
        "+exit.diversity_bonus=none",
        "trainer.save_freq=1",
        *overrides,
    )


def record_prompts(monkeypatch) -> dict[int, list]:
    issued: dict[int, list] = {}
    real = ExItController.next_batch_dict

    def next_batch_dict(self, n, step):
        batch = real(self, n, step)
        issued.setdefault(step, []).extend([list(m) for m in batch["raw_prompt"]])
        return batch

    monkeypatch.setattr(ExItController, "next_batch_dict", next_batch_dict)
    return issued


def kill_between_exit_files(monkeypatch) -> None:
    real = controller.write_atomic

    def write(path, data):
        if Path(path).name == STATE_FILE and Path(path).parent.name == f"global_step_{KILLED_AT}":
            raise Killed  # the archive is written, the state is not
        real(path, data)

    monkeypatch.setattr(controller, "write_atomic", write)


def kill_in_actor_save(after: bool):
    def patch(monkeypatch) -> None:
        real = harness.FakeActor.save_checkpoint

        def save(self, local_path, hdfs_path=None, global_step=0, max_ckpt_to_keep=None):
            if global_step == KILLED_AT and not after:
                raise Killed  # ExIt's files are written, verl's not
            real(self, local_path, hdfs_path, global_step, max_ckpt_to_keep)
            if global_step == KILLED_AT:
                raise Killed  # verl saved the actor (and pruned old ones), no tracker yet

        monkeypatch.setattr(harness.FakeActor, "save_checkpoint", save)

    return patch


def kill_before_tracker(monkeypatch) -> None:
    real = torch.save

    def save(obj, path, *args, **kwargs):
        real(obj, path, *args, **kwargs)
        if str(path).endswith(f"global_step_{KILLED_AT}/data.pt"):
            raise Killed  # every file of the step is written, the tracker is not

    monkeypatch.setattr(torch, "save", save)


def kill_before_exit_pruning(monkeypatch) -> None:
    real = checkpoint_files.ExItCheckpointFiles.after_save

    def after_save(self, folder, max_keep):
        if Path(folder).name == f"global_step_{KILLED_AT}":
            raise Killed  # the tracker names the new step; older ExIt files are still there
        real(self, folder, max_keep)

    monkeypatch.setattr(checkpoint_files.ExItCheckpointFiles, "after_save", after_save)


@pytest.fixture(scope="module")
def uninterrupted(fit_data, tmp_path_factory):
    """Prompts of every step and the final archive of a run that was never interrupted."""
    work = tmp_path_factory.mktemp("whole")
    with pytest.MonkeyPatch.context() as mp:
        issued = record_prompts(mp)
        run = harness.fit(
            compose(fit_data, work, f"trainer.total_training_steps={STEPS}"),
            work / "m.jsonl",
        )
    return issued, run.trainer.exit.curriculum.archive.to_bytes()


# (kill point, actor checkpoints kept, step the resume continues from or None: refused)
FAULTS = [
    ("between ExIt files", kill_between_exit_files, 1, 1),
    ("before verl's files", kill_in_actor_save(after=False), 1, 1),
    ("after verl's actor, keep 1", kill_in_actor_save(after=True), 1, None),
    ("after verl's actor, keep 2", kill_in_actor_save(after=True), 2, 1),
    ("before the tracker, keep 1", kill_before_tracker, 1, None),
    ("before the tracker, keep 2", kill_before_tracker, 2, 1),
    ("before ExIt pruning", kill_before_exit_pruning, 1, 2),
]


@pytest.mark.parametrize(
    ("point", "kill", "keep", "resumes_from"), FAULTS, ids=[f[0] for f in FAULTS]
)
def test_an_interrupted_save_resumes_whole_or_stops_with_the_reason(
    fit_data, uninterrupted, tmp_path, monkeypatch, point, kill, keep, resumes_from
) -> None:
    whole_prompts, whole_archive = uninterrupted
    keep_override = f"trainer.max_actor_ckpt_to_keep={keep}"
    with monkeypatch.context() as mp:
        kill(mp)
        with pytest.raises(Killed):
            harness.fit(
                compose(fit_data, tmp_path, f"trainer.total_training_steps={STEPS}", keep_override),
                tmp_path / "first.jsonl",
            )
    root = tmp_path / "ckpt"
    tracked = checkpoint_files.tracked_step(root)
    # The folder the tracker names holds a complete ExIt unit of its own step.
    state = json.loads((root / f"global_step_{tracked}" / STATE_FILE).read_text())
    assert state["step"] == tracked

    issued = record_prompts(monkeypatch)
    resume = compose(fit_data, tmp_path, f"trainer.total_training_steps={STEPS}", keep_override)
    if resumes_from is None:
        with pytest.raises(ValueError, match="no actor checkpoint") as refused:
            harness.fit(resume, tmp_path / "second.jsonl")
        # The message names the newest complete folder; resuming it continues exactly.
        newest = root / f"global_step_{KILLED_AT}"
        assert f"trainer.resume_from_path={newest}" in str(refused.value)
        resume = compose(
            fit_data,
            tmp_path,
            f"trainer.total_training_steps={STEPS}",
            keep_override,
            "trainer.resume_mode=resume_path",
            f"trainer.resume_from_path={newest}",
        )
        resumes_from = KILLED_AT
    run = harness.fit(resume, tmp_path / "second.jsonl")
    assert run.actor.loaded == [str(root / f"global_step_{resumes_from}" / "actor")]
    continued = range(resumes_from + 1, STEPS + 1)
    assert {s: issued[s] for s in continued} == {s: whole_prompts[s] for s in continued}
    assert run.trainer.exit.curriculum.archive.to_bytes() == whole_archive


def test_a_state_from_another_save_is_refused(fit_data, tmp_path) -> None:
    """ExIt files copied between folders (or an archive from another step) are named as the
    mismatch before any weights load."""
    harness.fit(
        compose(fit_data, tmp_path, "trainer.total_training_steps=2", "trainer.save_freq=1"),
        tmp_path / "m.jsonl",
    )
    root = tmp_path / "ckpt"
    one, two = root / "global_step_1", root / "global_step_2"
    for mixed, message in (
        ((one / STATE_FILE, two / STATE_FILE), "written at step 1"),
        ((one / ARCHIVE_FILE, two / ARCHIVE_FILE), "checksum differs"),
    ):
        saved = {f: f.read_bytes() for f in (two / STATE_FILE, two / ARCHIVE_FILE)}
        if not one.joinpath(STATE_FILE).exists():
            pytest.fail("keep-all retention should have kept step 1's ExIt files")
        shutil.copy(*mixed)
        config = compose(fit_data, tmp_path, "trainer.total_training_steps=3")
        with pytest.raises(ValueError, match=message):
            harness.fit(config, tmp_path / "again.jsonl")
        for f, content in saved.items():
            f.write_bytes(content)
