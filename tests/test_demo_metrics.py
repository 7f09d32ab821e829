"""metrics.jsonl across resumed jobs, reading verl's tracker as it grows, exit_val parsing,
eval.json and the run plots (no verl job: records written by hand)."""

from __future__ import annotations

import json

from deps import need

from exit_verl.demo.job import TrackerFollower
from exit_verl.demo.metrics import (
    MetricsLog,
    evaluations,
    max_training_depth,
    read_metrics,
    self_improvement,
)


def _train(step: int, **data: float) -> dict:
    return {"step": step, "data": {"training/global_step": step, **data}}


def test_resumed_job_keeps_earlier_lines_and_replaces_redone_steps(tmp_path) -> None:
    path = tmp_path / "metrics.jsonl"
    first = MetricsLog(path)
    first.begin_job()
    first.add({"step": 0, "data": {"exit_val/mean@0": 0.1}})  # base model validation
    for step in (1, 2, 3):
        first.add(_train(step, loss=float(step)))
    first.add({"step": 3, "data": {"exit_val/mean@0": 0.2}})  # validation merged into step 3
    # A crash after step 3, checkpoint at 2: the next job (reading the file afresh) redoes 3.
    second = MetricsLog(path)
    second.begin_job()
    second.add(_train(3, loss=30.0))
    second.add(_train(4, loss=40.0))
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert [r["step"] for r in lines] == [0, 1, 2, 3, 4]  # one line per step, in order
    assert lines[0]["data"] == {"exit_val/mean@0": 0.1}
    assert lines[1]["data"]["loss"] == 1.0
    assert lines[3]["data"] == {"training/global_step": 3, "loss": 30.0}  # the redone step
    assert read_metrics(path)[4]["loss"] == 40.0


def test_follower_returns_only_complete_lines(tmp_path) -> None:
    path = tmp_path / "tracker.jsonl"
    follower = TrackerFollower(path)
    assert follower.read() == []  # not created yet
    with path.open("wb") as f:
        f.write(b'{"step": 1, "data": {"a": 1}}\n{"step": 2, "da')
    assert follower.read() == [{"step": 1, "data": {"a": 1}}]
    with path.open("ab") as f:
        f.write(b'ta": {"a": 2}}\n')
    assert follower.read() == [{"step": 2, "data": {"a": 2}}]
    assert follower.read() == []


def _exit_val(means: list[float], accuracy: list[float], net: list[float]) -> dict:
    data = {}
    for t, (m, a, n) in enumerate(zip(means, accuracy, net, strict=True)):
        data[f"exit_val/mean@{t}"] = m
        data[f"exit_val/accuracy@{t}"] = a
        data[f"exit_val/best_so_far@{t}"] = max(means[: t + 1])
        data[f"exit_val/net_corrections@{t}"] = n
        data[f"exit_val/missing@{t}"] = 0.0
    data["exit_val/first_step_accuracy"] = accuracy[0]
    data["exit_val/final_accuracy"] = accuracy[-1]
    data["exit_val/accuracy_gain"] = accuracy[-1] - accuracy[0]
    data["exit_val/chains"] = 8.0
    return data


def test_self_improvement_lists_steps_in_order() -> None:
    data = _exit_val([0.1, 0.3, 0.2], [0.0, 0.25, 0.125], [0.0, 2.0, 1.0])
    data["val-core/x"] = 1.0
    out = self_improvement(dict(reversed(list(data.items()))))  # order of keys is irrelevant
    assert out is not None
    assert out["iterations"] == 2
    assert out["mean"] == [0.1, 0.3, 0.2]
    assert out["accuracy"] == [0.0, 0.25, 0.125]
    assert out["best_so_far"] == [0.1, 0.3, 0.3]
    assert out["net_corrections"] == [0.0, 2.0, 1.0]
    assert out["first_step_accuracy"] == 0.0 and out["accuracy_gain"] == 0.125
    assert self_improvement({"val-core/x": 1.0}) is None


def test_eval_json_and_plots_from_a_run(tmp_path) -> None:
    need("matplotlib")
    from exit_verl.demo.config import load_config
    from exit_verl.demo.train import write_eval_and_plots

    cfg = load_config(overrides=["eval.iterations=2"])
    log = MetricsLog(tmp_path / "metrics.jsonl")
    log.begin_job()
    log.add({"step": 0, "data": _exit_val([0.1, 0.1, 0.1], [0.0, 0.0, 0.0], [0.0, 0.0, 0.0])})
    for step, depth in ((1, 0.0), (2, 2.0)):
        log.add(
            _train(
                step,
                **{
                    "critic/score/mean": 0.1 * step,
                    "exit/archive_size": 4.0 * step,
                    "exit/replay_fraction": 0.5,
                    "exit/depth_max": depth,
                    "timing_s/gen": 3.0,
                    "timing_s/update_actor": 2.0,
                    "timing_s/step": 5.5,
                },
            )
        )
    log.add({"step": 2, "data": _exit_val([0.2, 0.4, 0.3], [0.0, 0.5, 0.25], [0.0, 4.0, 2.0])})
    result = write_eval_and_plots(tmp_path, cfg)
    assert result["base"]["step"] == 0 and result["base"]["mean"] == [0.1, 0.1, 0.1]
    assert result["trained"]["step"] == 2 and result["trained"]["net_corrections"][-1] == 2.0
    assert result["max_training_depth"] == 2 == max_training_depth(read_metrics(log.path))
    assert json.loads((tmp_path / "eval.json").read_text()) == result
    assert sorted(evaluations(read_metrics(log.path))) == [0, 2]
    for name in ("reward", "archive", "learnability", "depth", "timing", "eval"):
        png = tmp_path / "plots" / f"{name}.png"
        assert png.read_bytes()[:4] == b"\x89PNG", name
