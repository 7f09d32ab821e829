"""The tool-use domain on bfcl-eval's real data and classes: split, Env, checker (no verl)."""

from __future__ import annotations

import json

import pytest
from deps import need

need("bfcl_eval")

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from exit_verl.domains import bfcl  # noqa: E402
from exit_verl.domains.bfcl.data import scenario_index  # noqa: E402
from exit_verl.domains.bfcl.env import MAX_CALL_CHARS, REFUSED  # noqa: E402


@pytest.fixture(scope="module")
def all_tasks() -> dict[str, list[dict]]:
    return {split: bfcl.tasks(split) for split in bfcl.SPLITS}


def test_split_is_fixed_disjoint_by_scenario_and_complete(all_tasks) -> None:
    train, test = all_tasks["train"], all_tasks["test"]
    assert len(train) == 640 and len(test) == 160
    for split in (train, test):
        for category in bfcl.CATEGORIES:
            assert sum(t["category"] == category for t in split) == len(split) // 4
    train_scenarios = {scenario_index(t["id"]) for t in train}
    test_scenarios = {scenario_index(t["id"]) for t in test}
    assert not train_scenarios & test_scenarios
    assert train_scenarios | test_scenarios == set(range(200))
    assert all(i % 5 == 0 for i in test_scenarios)
    # Fixed: the same ids in the same order on every call, and fresh copies.
    again = bfcl.tasks("test")
    assert [t["id"] for t in again] == [t["id"] for t in test]
    again[0]["turns"].clear()
    assert bfcl.tasks("test")[0]["turns"]
    with pytest.raises(ValueError, match="split"):
        bfcl.tasks("validation")
    with pytest.raises(ValueError, match="category"):
        bfcl.tasks("train", ["simple"])


def test_task_layout_and_function_docs(all_tasks) -> None:
    task = bfcl.task("multi_turn_miss_func_0")
    assert len(task["turns"]) == len(task["ground_truth"]) == len(task["added_functions"])
    # The withheld function is announced at its turn, not before.
    names = {f["function"]["name"] for f in task["functions"]}
    added = {t: [f["function"]["name"] for f in fs] for t, fs in enumerate(task["added_functions"])}
    assert added[3] == ["sort"] and "sort" not in names
    assert "updated some more functions" in task["turns"][3][0]["content"]
    schema = next(f for f in task["functions"] if f["function"]["name"] == "cd")
    assert schema["type"] == "function"
    assert schema["function"]["parameters"]["type"] == "object"
    assert "Python 3 syntax" in schema["function"]["description"]
    assert json.loads(json.dumps(all_tasks["train"][0])) == all_tasks["train"][0]
    with pytest.raises(KeyError):
        bfcl.task("multi_turn_base_999")


def test_ground_truth_scores_one_on_every_entry_and_a_dropped_turn_zero(all_tasks) -> None:
    for split in bfcl.SPLITS:
        for task in all_tasks[split]:
            assert bfcl.score(task, task["ground_truth"]) == 1.0, task["id"]
    for task in all_tasks["test"]:
        if task["category"] != "base":
            continue
        for turn, calls in enumerate(task["ground_truth"]):
            if calls:
                dropped = [list(c) for c in task["ground_truth"]]
                dropped[turn] = []
                assert bfcl.score(task, dropped) == 0.0, (task["id"], turn)
    task = all_tasks["test"][0]
    assert bfcl.score(task, task["ground_truth"][:-1]) == 0.0  # cut short
    with pytest.raises(ValueError):
        bfcl.score(task, "cd(folder='x')")
    with pytest.raises(ValueError):
        bfcl.score(task, [["cd(folder='x')", 3]])


HOSTILE = [
    "__import__('os').system('touch {marker}')",
    "import os",
    "exec(\"open('{marker}', 'w')\")",
    "eval('1')",
    "open('{marker}', 'w')",
    "cd.__globals__['__builtins__']",
    "cd(folder='x').__class__",
    "os.system('touch {marker}')",
    "_load_scenario({{}})",
    "__init__()",
    "cd(folder=__import__('os').system('touch {marker}'))",
    "cd(folder=(lambda: 'x')())",
    "cd(folder=[x for x in 'ab'])",
    "cd(folder=ls())",
    "cd(*['x'])",
    "cd(**{{'folder': 'x'}})",
    "cd(folder=folder)",
    "cd(folder='a'); cd(folder='b')",
    "cd(folder='a', folder='b')",
    "mkdir(dir_name='" + "a" * MAX_CALL_CHARS + "')",
    "mkdir(dir_name=" + "[" * 300 + "]" * 300 + ")",
    "mean(numbers=[" + ",".join(["9" * 12] * 3) + "])",
    "cd(folder=1j)",
    "no_such_function(x=1)",
    "cd",
    "",
    "cd(folder='x'",
]


def test_hostile_calls_run_nothing_and_leave_the_state_alone(tmp_path) -> None:
    task = bfcl.task("multi_turn_base_0")
    env = bfcl.Env(task)
    before = env.state()
    marker = tmp_path / "ran"
    for text in HOSTILE:
        out = env.call(text.format(marker=marker))
        assert out.startswith(REFUSED), (text[:60], out)
        assert env.state() == before, text[:60]
    assert not marker.exists()
    # MathAPI: arguments that set the cost of the work are bounded.
    math_env = bfcl.Env({"involved_classes": ["MathAPI"], "initial_config": {}})
    assert math_env.call("power(base=10, exponent=100000000)").startswith(REFUSED)
    assert math_env.call("logarithm(value=3, base=2, precision=10**9)").startswith(REFUSED)
    assert math_env.call("power(base=2, exponent=10)") == '{"result": 1024}'
    # A well-formed call with wrong arguments runs and fails as BFCL reports it.
    assert env.call("cd(directory='x')").startswith("Error during execution:")


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=200))
def test_any_text_is_either_refused_untouched_or_run(text: str) -> None:
    env = bfcl.Env({"involved_classes": ["MathAPI", "TwitterAPI"], "initial_config": {}})
    before = env.state()
    out = env.call(text)
    assert isinstance(out, str)
    if out.startswith(REFUSED):
        assert env.state() == before


def test_envs_are_independent_and_replays_reach_equal_states() -> None:
    task = bfcl.task("multi_turn_base_1")
    first, second = bfcl.Env(task), bfcl.Env(task)
    untouched = second.state()
    calls = [c for turn in task["ground_truth"] for c in turn]
    outputs = [first.call(c) for c in calls]
    assert first.state() != untouched and second.state() == untouched
    assert [second.call(c) for c in calls] == outputs
    assert first.state() == second.state()
    assert bfcl.Env(task).state() == untouched  # nothing leaked into a new episode


def test_call_text_round_trips_through_the_parser() -> None:
    arguments = {"folder": "a'b\"c", "n": 3, "x": -1.5, "flags": [True, None], "d": {"k": [1]}}
    text = bfcl.call_text("cd", arguments)
    assert bfcl.parse_call(text) == ("cd", (), arguments)
    for name, args in [("a.b", {}), ("cd", {"bad key": 1}), ("cd", [1]), ("cd", {"x": {1, 2}})]:
        with pytest.raises(ValueError):
            bfcl.call_text(name, args)
