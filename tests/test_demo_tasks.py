"""The demo's task family: distinct, verifiable, split by seed, graded rewards."""

from __future__ import annotations

import pytest
from deps import need

need("math_verify")

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
