"""`exit-verl compare`: arms as presets through the same demo, the base model once, 95%
t-intervals checked against values computed by hand, the table, resuming a comparison."""

from __future__ import annotations

import json
import math

import pytest
from deps import need

need("scipy")
need("matplotlib")

from exit_verl.demo import compare as compare_module  # noqa: E402
from exit_verl.demo import eval_file  # noqa: E402
from exit_verl.demo.config import load_config  # noqa: E402
from exit_verl.demo.train import eval_settings  # noqa: E402

# t quantile 0.975 with 2 degrees of freedom (tables): 4.302653
T_2DF = 4.302652729911275


def test_confidence_interval_by_hand() -> None:
    mean, half = compare_module.confidence_interval([[0.1, 0.3], [0.2, 0.5], [0.3, 0.4]])
    assert mean.tolist() == pytest.approx([0.2, 0.4])
    # step 1: values 0.3, 0.5, 0.4 -> sample sd 0.1, sem 0.1/sqrt(3)
    assert half[1] == pytest.approx(T_2DF * 0.1 / math.sqrt(3))
    one_mean, one_half = compare_module.confidence_interval([[0.7, 0.8]])
    assert one_mean.tolist() == [0.7, 0.8] and one_half.tolist() == [0.0, 0.0]


def test_parse_arms() -> None:
    assert compare_module.parse_arms("grpo, improve,exit") == ["grpo", "improve", "exit"]
    for bad in ("", "grpo,grpo", "grpo,nope"):
        with pytest.raises(ValueError):
            compare_module.parse_arms(bad)


def _fake_result(arm: str, seed: int, k: int, steps: int, base: bool) -> dict:
    # Distinct, known numbers per arm and seed.
    level = {"grpo": 0.1, "improve": 0.2, "exit": 0.3}[arm] + 0.01 * seed
    curve = [level + 0.02 * t for t in range(k + 1)]
    result = {
        "max_training_depth": seed,
        "trained": {
            "step": steps,
            "mean": curve,
            "accuracy": [c / 2 for c in curve],
            "best_so_far": curve,
            "net_corrections": [float(t * seed) for t in range(k + 1)],
            "first_step_accuracy": curve[0] / 2,
            "final_accuracy": curve[-1] / 2,
            "accuracy_gain": (curve[-1] - curve[0]) / 2,
        },
    }
    if base:
        result["base"] = {
            "step": 0,
            "mean": [0.05] * (k + 1),
            "accuracy": [0.0] * (k + 1),
            "best_so_far": [0.05] * (k + 1),
            "net_corrections": [0.0] * (k + 1),
            "first_step_accuracy": 0.0,
            "final_accuracy": 0.0,
            "accuracy_gain": 0.0,
        }
    return result


def _fake_demo(calls: list | None = None, *, final_validation: bool = True):
    """A `run_demo` stand-in writing the run folder the way the demo does."""

    def fake_run_demo(run_cfg, run_dir, *, log=print, progress=True):
        if calls is not None:
            calls.append((run_cfg, run_dir.name))
        arm = run_cfg.exit["preset"]
        result = _fake_result(arm, run_cfg.seed, 2, run_cfg.steps, run_cfg.eval.before_train)
        run_dir.mkdir(parents=True, exist_ok=True)
        run_cfg.to_yaml(run_dir / "config.yaml")
        if not final_validation:  # trained to the last step; the final validation never logged
            del result["trained"]
            return result
        results = {k: v for k, v in result.items() if k in eval_file.RESULTS}
        training = {"max_training_depth": result["max_training_depth"]}
        return eval_file.record(run_dir, eval_settings(run_cfg), results, training)

    return fake_run_demo


def test_compare_runs_each_arm_and_seed_once_through_the_demo(tmp_path, monkeypatch, capsys):
    import exit_verl.demo.train as train

    cfg = load_config(overrides=["steps=3", "eval.iterations=2", "exit.p_replay=0.4"])
    calls: list = []
    monkeypatch.setattr(train, "run_demo", _fake_demo(calls))
    summary = compare_module.compare(
        cfg, ["grpo", "exit"], 3, tmp_path, progress=False, log=lambda m: None
    )
    names = [name for _, name in calls]
    assert names == [f"{arm}-seed{s}" for s in range(3) for arm in ("grpo", "exit")]
    for run_cfg, name in calls:
        arm, seed = name.split("-seed")
        assert run_cfg.exit == {**cfg.exit, "preset": arm}  # the arm is the preset only
        assert run_cfg.seed == int(seed) and run_cfg.steps == 3
        assert run_cfg.eval.before_train == (name == "grpo-seed0")  # base model once
    exit_arm = summary["arms"]["exit"]
    assert exit_arm["seeds"] == 3
    # exit, step 0: 0.30, 0.31, 0.32 -> mean 0.31, sd 0.01
    assert exit_arm["mean"]["mean"][0] == pytest.approx(0.31)
    assert exit_arm["mean"]["ci95"][0] == pytest.approx(T_2DF * 0.01 / math.sqrt(3))
    # net corrections at step 2: 2 * seed -> 0, 2, 4: mean 2, sd 2
    assert exit_arm["net_corrections"]["mean"][-1] == pytest.approx(2.0)
    assert exit_arm["net_corrections"]["ci95"][-1] == pytest.approx(T_2DF * 2 / math.sqrt(3))
    assert summary["arms"]["base"]["seeds"] == 1
    assert summary["arms"]["base"]["mean"]["mean"] == [0.05] * 3
    assert summary["max_training_depth"] == 2
    assert json.loads((tmp_path / "compare.json").read_text())["arms"].keys() == {
        "grpo",
        "exit",
        "base",
    }
    assert (tmp_path / "plots" / "compare.png").read_bytes()[:4] == b"\x89PNG"
    table = (tmp_path / "compare.md").read_text()
    # exit, accuracy at step 0: 0.150, 0.155, 0.160 -> 0.155 ± 4.3027 * 0.005 / sqrt(3) = 0.0124
    assert "| exit | 3 | 0.155 ± 0.012 |" in table
    assert "| +2.00 ± 4.97 |" in table  # net corrections at K = 2: 0, 2, 4
    assert "± +" not in table and "± -" not in table  # half-widths carry no sign
    assert "| base | 1 | 0.000 |" in table
    assert table.strip() in capsys.readouterr().out

    # Run again: finished runs are reused, nothing is trained.
    calls.clear()
    again = compare_module.compare(
        cfg, ["grpo", "exit"], 3, tmp_path, progress=False, log=lambda m: None
    )
    assert calls == []
    assert again["arms"]["exit"]["mean"] == exit_arm["mean"]

    # The same folder with other settings is refused before any job.
    other = load_config(overrides=["steps=3", "eval.iterations=2", "exit.p_replay=0.9"])
    with pytest.raises(ValueError, match="other settings"):
        compare_module.compare(other, ["grpo"], 1, tmp_path, progress=False, log=lambda m: None)
    assert calls == []


def test_compare_evaluates_a_run_stopped_during_its_final_validation(tmp_path, monkeypatch):
    import exit_verl.demo.evaluate as evaluate
    import exit_verl.demo.train as train

    cfg = load_config(overrides=["steps=3", "eval.iterations=2"])
    evaluated = []

    def fake_evaluate_run(run_dir, iterations=None, samples=None, *, log=print):
        evaluated.append(run_dir.name)
        result = _fake_result("grpo", 0, 2, 3, True)
        (run_dir / "eval.json").write_text(json.dumps(result))
        return result

    monkeypatch.setattr(train, "run_demo", _fake_demo(final_validation=False))
    monkeypatch.setattr(evaluate, "evaluate_run", fake_evaluate_run)
    summary = compare_module.compare(cfg, ["grpo"], 1, tmp_path, progress=False, log=lambda m: None)
    assert evaluated == ["grpo-seed0"]
    assert summary["arms"]["grpo"]["mean"]["mean"][0] == pytest.approx(0.1)


def test_a_run_evaluated_again_with_other_settings_keeps_its_place_in_the_comparison(
    tmp_path, monkeypatch
):
    import exit_verl.demo.train as train

    cfg = load_config(overrides=["steps=3", "eval.iterations=2"])
    monkeypatch.setattr(train, "run_demo", _fake_demo())
    compare_module.compare(cfg, ["grpo", "exit"], 1, tmp_path, progress=False, log=lambda m: None)
    summary = (tmp_path / "compare.json").read_text()
    # `exit-verl eval --samples 4` on one run: eval.json's latest evaluation is a sampled one.
    run_dir = tmp_path / "exit-seed0"
    greedy = eval_file.read(run_dir)
    sampled_settings = {**eval_settings(cfg), "samples": 4, "temperature": 0.7}
    sampled = {**greedy["trained"], "accuracy": [0.9, 0.9, 0.9]}
    doc = eval_file.record(run_dir, sampled_settings, {"trained": sampled})
    assert doc["samples"] == 4 and doc["trained"] == sampled
    assert len(doc["evaluations"]) == 2

    def no_job(*args, **kwargs):
        raise AssertionError("a job started")

    monkeypatch.setattr(train, "run_demo", no_job)
    for report_only in (False, True):
        compare_module.compare(
            cfg,
            ["grpo", "exit"],
            1,
            tmp_path,
            progress=False,
            report_only=report_only,
            log=lambda m: None,
        )
        # the greedy evaluation enters the table, not the sampled one
        assert (tmp_path / "compare.json").read_text() == summary
    assert eval_file.read(run_dir)["trained"] == sampled  # nothing rewritten


def test_a_file_without_the_comparisons_evaluation_is_evaluated_again(tmp_path, monkeypatch):
    import exit_verl.demo.train as train

    cfg = load_config(overrides=["steps=3", "eval.iterations=2"])
    monkeypatch.setattr(train, "run_demo", _fake_demo())
    compare_module.compare(cfg, ["grpo", "exit"], 1, tmp_path, progress=False, log=lambda m: None)
    # eval.json as written before it kept several evaluations: one sampled evaluation, top level
    path = tmp_path / "exit-seed0" / "eval.json"
    old = json.loads(path.read_text())
    sampled = {k: v for k, v in old.items() if k != "evaluations"}
    path.write_text(json.dumps({**sampled, "samples": 4, "temperature": 0.7}))
    calls: list = []
    monkeypatch.setattr(train, "run_demo", _fake_demo(calls))
    compare_module.compare(cfg, ["grpo", "exit"], 1, tmp_path, progress=False, log=lambda m: None)
    assert [name for _, name in calls] == ["exit-seed0"]  # the demo rewrites it (no training)
    doc = json.loads(path.read_text())
    assert [e["samples"] for e in doc["evaluations"]] == [4, 1]  # the sampled one is kept


def test_report_only_summarizes_finished_runs_and_starts_none(tmp_path, monkeypatch):
    import exit_verl.demo.train as train

    cfg = load_config(overrides=["steps=3", "eval.iterations=2"])

    def no_job(*args, **kwargs):
        raise AssertionError("report_only started a job")

    with pytest.raises(ValueError, match="no finished run"):
        compare_module.compare(
            cfg, ["grpo"], 2, tmp_path, progress=False, report_only=True, log=lambda m: None
        )
    monkeypatch.setattr(train, "run_demo", _fake_demo())
    compare_module.compare(cfg, ["grpo", "exit"], 1, tmp_path, progress=False, log=lambda m: None)
    monkeypatch.setattr(train, "run_demo", no_job)
    logged: list[str] = []
    summary = compare_module.compare(
        cfg, ["grpo", "exit"], 2, tmp_path, progress=False, report_only=True, log=logged.append
    )
    assert summary["arms"]["grpo"]["seeds"] == 1 and summary["arms"]["exit"]["seeds"] == 1
    assert summary["arms"]["base"]["seeds"] == 1
    assert sum("not finished, left out" in line for line in logged) == 2  # seed 1 of both arms
    assert "| exit | 1 |" in (tmp_path / "compare.md").read_text()
