"""The demo's task family: distinct, verifiable, split by seed, graded rewards."""

from __future__ import annotations

import pytest

pytest.importorskip("math_verify")

from exit_verl.demo.config import DemoConfig  # noqa: E402
from exit_verl.demo.tasks import extract_number, make_tasks, reward  # noqa: E402


def test_tasks_are_correct_distinct_and_split() -> None:
    train = make_tasks(200, "train", seed=3, steps=3)
    heldout = make_tasks(50, "heldout", seed=3, steps=3)
    for t in train + heldout:
        assert int(t["answer"]) == eval(t["expression"])  # the generator's arithmetic is right
        assert t["expression"] in t["prompt"] and "\\boxed" in t["prompt"]
    train_expr = {t["expression"] for t in train}
    assert len(train_expr) == 200
    assert not train_expr & {t["expression"] for t in heldout}
    assert make_tasks(20, "train", seed=3, steps=3) == train[:20]  # seeded
    assert make_tasks(20, "train", seed=4, steps=3) != train[:20]
    other_seed = make_tasks(400, "train", seed=9, steps=3)
    assert not {t["expression"] for t in other_seed} & {t["expression"] for t in heldout}
    with pytest.raises(ValueError):
        make_tasks(5, "validation")


def test_reward_grades_only_the_final_answer() -> None:
    task = {"answer": "21"}
    assert reward(task, "4*9 = 36 and 36 - 15 = \\boxed{21}") == 1.0
    assert reward(task, "so the answer is 21") == 1.0
    assert reward(task, "\\boxed{21.0}") == 1.0
    near, far = reward(task, "\\boxed{20}"), reward(task, "\\boxed{60}")
    assert 0 < far < near < 0.5
    assert reward(task, "Compute (4 * 9) - 15") < 0.5  # restating the task is not an answer
    assert reward(task, "no idea") == 0.0
    assert reward({"answer": "-16"}, "\\boxed{-16}") == 1.0
    assert extract_number("first 3, then \\boxed{7} and 9") == 7.0


def test_demo_config_round_trip_and_errors(tmp_path) -> None:
    cfg = DemoConfig(steps=3)
    cfg.to_yaml(tmp_path / "c.yaml")
    assert DemoConfig.from_yaml(tmp_path / "c.yaml") == cfg
    with pytest.raises(KeyError):
        DemoConfig.from_dict({"stepz": 3})
    with pytest.raises(ValueError):
        DemoConfig.from_dict({"group_size": 1})
    with pytest.raises(ValueError):
        DemoConfig.from_dict({"exit": {"p_replay": 2.0}})


def test_example_config_is_the_builtin_default() -> None:
    from pathlib import Path

    example = Path(__file__).resolve().parents[1] / "examples" / "cpu_demo.yaml"
    assert DemoConfig.from_yaml(example) == DemoConfig()


def test_compare_summary_has_t_intervals_and_plots(tmp_path) -> None:
    import numpy as np

    pytest.importorskip("scipy")
    pytest.importorskip("matplotlib")
    from scipy.stats import t

    from exit_verl.demo.compare import arm_config, summarize
    from exit_verl.demo.plots import plot_compare

    curves = {"exit": [[0.1, 0.3], [0.2, 0.5], [0.3, 0.4]], "grpo": [[0.1, 0.1], [0.1, 0.2]]}
    summary = summarize(curves)
    exit_arm = summary["arms"]["exit"]
    assert exit_arm["seeds"] == 3
    assert np.allclose(exit_arm["mean"], [0.2, 0.4])
    expected = t.ppf(0.975, 2) * np.std([0.3, 0.5, 0.4], ddof=1) / np.sqrt(3)
    assert np.isclose(exit_arm["ci95"][1], expected)
    png = plot_compare(summary, tmp_path / "compare.png")
    assert png.read_bytes()[:4] == b"\x89PNG"

    plain = arm_config(DemoConfig(), "grpo", seed=5)
    assert plain.exit.p_replay == 0.0 and plain.exit.diversity_bonus == "none"
    assert plain.seed == 5 and plain.group_size == DemoConfig().group_size
