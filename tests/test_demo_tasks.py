"""The demo's task family: distinct, correct, split, seeded, an exact difficulty mix, and a
graded reward that reads only the final answer."""

from __future__ import annotations

import ast
import operator
from collections import Counter

import pytest

from exit_verl.demo.tasks import extract_number, is_heldout, make_tasks, reward

_OPS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul}


def _value(expression: str) -> int:
    """The expression's value with Python's precedence, read from its syntax tree."""

    def walk(node: ast.AST) -> int:
        if isinstance(node, ast.BinOp) and type(node.op) in _OPS:
            return _OPS[type(node.op)](walk(node.left), walk(node.right))
        if isinstance(node, ast.Constant) and isinstance(node.value, int):
            return node.value
        raise ValueError(f"unexpected syntax in {expression!r}")

    return walk(ast.parse(expression, mode="eval").body)


def _operations(expression: str) -> int:
    return sum(expression.count(f" {op} ") for op in "+-*")


def test_tasks_are_correct_distinct_and_mixed_as_asked() -> None:
    train = make_tasks(300, "train", seed=3)
    heldout = make_tasks(64, "heldout")
    for t in train + heldout:
        assert int(t["answer"]) == _value(t["expression"]) >= 0
        assert _operations(t["expression"]) == t["steps"]
        assert t["expression"] in t["prompt"] and "\\boxed{number}" in t["prompt"]
    assert len({t["expression"] for t in train}) == 300
    # The default mix cycles 1, 1, 2 operations: two one-operation tasks per two-operation one.
    assert Counter(t["steps"] for t in heldout) == {1: 43, 2: 21}
    assert [t["steps"] for t in train[:4]] == [1, 1, 2, 1]
    three = make_tasks(30, "train", seed=0, steps=[1, 1, 3])
    assert Counter(t["steps"] for t in three) == {1: 20, 3: 10}
    assert {t["steps"] for t in make_tasks(10, "train", steps=2)} == {2}


def test_split_is_disjoint_and_the_same_for_every_seed() -> None:
    heldout = make_tasks(64, "heldout")
    assert all(is_heldout(t["expression"]) for t in heldout)
    assert make_tasks(64, "heldout") == heldout  # deterministic
    held = {t["expression"] for t in heldout}
    for seed in range(4):
        train = make_tasks(400, "train", seed=seed)
        assert not any(is_heldout(t["expression"]) for t in train)
        assert not held & {t["expression"] for t in train}
    assert make_tasks(20, "train", seed=3) == make_tasks(30, "train", seed=3)[:20]
    assert make_tasks(20, "train", seed=4) != make_tasks(20, "train", seed=3)


def test_bad_arguments_raise() -> None:
    with pytest.raises(ValueError, match="split"):
        make_tasks(5, "validation")
    for steps in ([], [0], [5], 0):
        with pytest.raises(ValueError, match="steps"):
            make_tasks(5, "train", steps=steps)
    with pytest.raises(ValueError, match="distinct"):
        make_tasks(10_000, "heldout", steps=1)  # there are not that many one-operation tasks


def test_reward_grades_only_the_final_answer() -> None:
    task = {"answer": "21"}
    assert reward(task, "4*9 = 36 and 36 - 15 = \\boxed{21}") == 1.0
    assert reward(task, "so the answer is 21") == 1.0
    assert reward(task, "\\boxed{21.0}") == 1.0
    assert reward(task, "\\boxed{x = 21}") == 1.0
    near, far = reward(task, "\\boxed{20}"), reward(task, "\\boxed{60}")
    assert 0 < far < near < 0.5
    assert reward(task, "21 is wrong, it is \\boxed{20}") == near  # the box wins
    assert reward(task, "Compute 4 * 9 - 15") < 0.5  # restating the task is not an answer
    assert reward(task, "no idea") == 0.0
    assert reward({"answer": "-16"}, "\\boxed{-16}") == 1.0
    assert extract_number("first 3, then \\boxed{7} and 9") == 7.0
