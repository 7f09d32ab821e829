"""evaluate_self_improvement on a scripted policy: every metric worked out by hand."""

from __future__ import annotations

import json

import pytest

from exit_verl import evaluate_self_improvement
from exit_verl.prompts import templates_for

TASKS = [{"prompt": "task zero", "answer": "R"}, {"prompt": "task one", "answer": "R"}]
# Chains in task-major order (task 0 sample 0, task 0 sample 1, task 1 sample 0, ...);
# per chain the answers at steps 0..3 (R = right, W = wrong):
#   A: W R R W    B: R R W R    C: W W W R    D: W R W W
SCRIPT = ["WRRW", "RRWR", "WWWR", "WRWW"]


def scripted(script: list[str], seen: list[list[list[dict]]]):
    def generate(prompts):
        step = len(seen)
        seen.append(prompts)
        # Long answers: the improve prompt must carry each one whole.
        return [chain[step] + "#" * 3000 + f"chain{c}" for c, chain in enumerate(script)]

    return generate


def reward(task, answer: str) -> float:
    return 1.0 if answer[0] == task["answer"] else 0.0


def test_metrics_by_hand() -> None:
    seen: list = []
    steps: list = []
    result = evaluate_self_improvement(
        scripted(SCRIPT, seen),
        reward,
        TASKS,
        3,
        samples=2,
        on_step=lambda t, mean: steps.append((t, mean)),
    )
    # Right answers per step: {B}, {A, B, D}, {A}, {B, C} out of 4 chains.
    assert result["accuracy"] == [0.25, 0.75, 0.25, 0.5]
    assert result["mean"] == [0.25, 0.75, 0.25, 0.5]
    assert steps == [(0, 0.25), (1, 0.75), (2, 0.25), (3, 0.5)]
    # Best so far per chain: A 0111, B 1111, C 0001, D 0111.
    assert result["best_so_far"] == [0.25, 0.75, 0.75, 1.0]
    # Wrong→right: step 1 A, D; step 3 B, C. Right→wrong: step 2 B, D; step 3 A.
    # Net per step +2, −2, +1 → accumulated 2, 0, 1 over 4 chains = 2 tasks × 2 samples.
    assert result["corrections"] == [0.0, 1.0, 0.0, 1.0]
    assert result["regressions"] == [0.0, 0.0, 1.0, 0.5]
    assert result["net_corrections"] == [0.0, 1.0, 0.0, 0.5]
    assert result["first_step_accuracy"] == 0.25 and result["final_accuracy"] == 0.5
    assert result["accuracy_gain"] == 0.25
    assert result["scores"][1][0] == [0.0, 0.0, 0.0, 1.0]  # task 1, sample 0 = chain C
    assert (result["iterations"], result["samples"], result["num_tasks"]) == (3, 2, 2)
    json.dumps(result)  # plain JSON


def test_each_step_is_one_batched_call_with_the_whole_previous_answer() -> None:
    seen: list = []
    evaluate_self_improvement(scripted(SCRIPT, seen), reward, TASKS, 3, samples=2)
    assert len(seen) == 4 and all(len(prompts) == 4 for prompts in seen)
    templates = templates_for("math")
    assert seen[0][0] == [
        {"role": "system", "content": templates.system},
        {"role": "user", "content": "task zero"},
    ]
    for step in (1, 2, 3):
        for c, prompt in enumerate(seen[step]):
            previous = SCRIPT[c][step - 1] + "#" * 3000 + f"chain{c}"
            text = prompt[-1]["content"]
            assert previous in text and "## Current response" in text
            assert ("task zero" if c < 2 else "task one") in text


def test_graded_rewards_use_the_correct_threshold_or_predicate() -> None:
    grades = {"a": 0.2, "b": 0.6, "c": 0.9}
    script = ["ab", "ca"]  # chain 0: 0.2 → 0.6, chain 1: 0.9 → 0.2

    calls: list = []

    def generate(prompts):
        calls.append(prompts)
        return [chain[len(calls) - 1] for chain in script]

    def graded(task, answer):
        return grades[answer]

    tasks = [{"prompt": "p0"}, {"prompt": "p1"}]
    result = evaluate_self_improvement(generate, graded, tasks, 1, correct=0.5)
    assert result["accuracy"] == [0.5, 0.5]
    assert result["net_corrections"] == [0.0, 0.0]  # one fixed, one broken
    assert result["mean"] == pytest.approx([0.55, 0.4])
    again = evaluate_self_improvement(
        lambda p: ["c", "c"], graded, tasks, 0, correct=lambda s: s > 0.95
    )
    assert again["accuracy"] == [0.0] and again["first_step_accuracy"] == 0.0


@pytest.mark.parametrize(
    "kwargs",
    [
        {"iterations": -1},
        {"iterations": 1.5},
        {"samples": 0},
        {"tasks": []},
        {"correct": "yes"},
        {"generate": lambda prompts: ["R"]},  # too few answers
        {"generate": lambda prompts: [1] * len(prompts)},  # not strings
    ],
)
def test_bad_arguments(kwargs) -> None:
    args = {
        "generate": lambda prompts: ["R"] * len(prompts),
        "reward_fn": reward,
        "tasks": TASKS,
        "iterations": 1,
        **kwargs,
    }
    with pytest.raises(ValueError):
        evaluate_self_improvement(**args)
