"""eval.json keeps one evaluation per set of settings: a new one replaces only its own."""

from __future__ import annotations

import json

import pytest

from exit_verl.demo import eval_file

GREEDY = {"tasks": 64, "iterations": 3, "samples": 1, "temperature": 0.0}
SAMPLED = {**GREEDY, "samples": 4, "temperature": 0.7}


def _result(step: int, level: float) -> dict:
    return {"step": step, "mean": [level, level], "accuracy": [level / 2, level / 2]}


def test_evaluations_with_other_settings_live_side_by_side(tmp_path) -> None:
    eval_file.record(
        tmp_path,
        GREEDY,
        {"base": _result(0, 0.1), "trained": _result(3, 0.2)},
        {"trained_steps": 3},
    )
    doc = eval_file.record(tmp_path, SAMPLED, {"trained": _result(3, 0.3)})
    assert doc == eval_file.read(tmp_path)
    assert doc["samples"] == 4 and doc["trained"] == _result(3, 0.3)  # the latest on top
    assert "base" not in doc  # no sampled base evaluation yet: not the greedy one
    assert doc["trained_steps"] == 3  # the training's figures survive an evaluation
    greedy = eval_file.find(doc, GREEDY)
    assert greedy is not None and greedy["trained"] == _result(3, 0.2)
    assert greedy["base"] == _result(0, 0.1)
    assert eval_file.find(doc, {**GREEDY, "iterations": 6}) is None
    assert eval_file.result(doc, GREEDY) == {**greedy, "trained_steps": 3}  # shaped like the top
    assert eval_file.result(doc, {**GREEDY, "iterations": 6}) is None


def test_the_same_settings_replace_only_their_own_results(tmp_path) -> None:
    eval_file.record(tmp_path, GREEDY, {"base": _result(0, 0.1), "trained": _result(3, 0.2)})
    eval_file.record(tmp_path, SAMPLED, {"trained": _result(3, 0.3)})
    doc = eval_file.record(tmp_path, GREEDY, {"trained": _result(4, 0.4)}, {"trained_steps": 4})
    assert [e["samples"] for e in doc["evaluations"]] == [4, 1]  # greedy is the latest again
    assert doc["trained"] == _result(4, 0.4) and doc["base"] == _result(0, 0.1)  # base kept
    assert doc["trained_steps"] == 4
    assert eval_file.find(doc, SAMPLED)["trained"] == _result(3, 0.3)


def test_a_file_from_before_the_list_is_one_evaluation(tmp_path) -> None:
    old = {**GREEDY, "trained": _result(3, 0.2), "max_training_depth": 2, "during_training": {}}
    (tmp_path / "eval.json").write_text(json.dumps(old))
    found = eval_file.find(eval_file.read(tmp_path), GREEDY)
    assert found == {**GREEDY, "trained": _result(3, 0.2)}
    doc = eval_file.record(tmp_path, SAMPLED, {"trained": _result(3, 0.3)})
    assert eval_file.find(doc, GREEDY) == found and doc["max_training_depth"] == 2
    assert eval_file.evaluations({}) == []


def test_an_unknown_result_is_refused_and_the_file_unchanged(tmp_path) -> None:
    eval_file.record(tmp_path, GREEDY, {"trained": _result(3, 0.2)})
    before = (tmp_path / "eval.json").read_bytes()
    with pytest.raises(KeyError, match="policy"):
        eval_file.record(tmp_path, SAMPLED, {"policy": _result(3, 0.3)})
    assert (tmp_path / "eval.json").read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["eval.json"]
