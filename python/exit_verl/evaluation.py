"""K-step inference-time self-improvement on held-out tasks (paper §5.3, Table 1, Fig. 3–4).

Each task is answered by `samples` independent chains (avg@n). Step 0 answers the base task;
step k >= 1 asks the policy to improve its own step k − 1 answer with the training
"improve" prompt (with the answer's `feedback`, e.g. an error trace, when a feedback function
is given). One `generate` call per step covers every chain, so callers batch it all.

Returned per step t = 0..K (lists of length K + 1), averaged over tasks and chains:
  mean            mean reward
  accuracy        share of answers counted correct (`correct`: a threshold on the reward,
                  default 1.0, or a predicate for graded rewards)
  best_so_far     mean over chains of the best reward up to step t
  net_corrections wrong→right minus right→wrong transitions, accumulated over steps 1..t,
                  counted over tasks and averaged over the n chains per task (0 at t = 0)
and `first_step_accuracy` (the accuracy of the first answer, step 0, before any
self-improvement — SCoRe's Accuracy@t1), `final_accuracy`, `accuracy_gain` (final − first)
and `scores[task][chain][step]`. Everything is plain JSON.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from exit_verl.prompts import Message, Templates, base_messages, render_messages, templates_for

Generate = Callable[[list[list[Message]]], list[str]]
RewardFn = Callable[[Mapping[str, Any], str], float]
Correct = float | Callable[[float], bool]
FeedbackFn = Callable[[Mapping[str, Any], str], "str | None"]


def evaluate_self_improvement(
    generate: Generate,
    reward_fn: RewardFn,
    tasks: Sequence[Mapping[str, Any]],
    iterations: int,
    *,
    samples: int = 1,
    templates: Templates | None = None,
    domain: str = "math",
    correct: Correct = 1.0,
    on_step: Callable[[int, float], None] | None = None,
    feedback: FeedbackFn | None = None,
) -> dict[str, Any]:
    """Runs `samples` chains of `iterations` improvement steps per task; see the module doc.

    `tasks` are mappings with "prompt" (a string or chat messages) and whatever `reward_fn`
    reads; `generate` maps a list of chat prompts to as many response strings. `feedback`,
    called after `reward_fn` with the same (task, answer), gives the text shown with that
    answer in the next improve prompt (the `{error}` slot), or None.
    """
    _check_count("iterations", iterations, 0)
    _check_count("samples", samples, 1)
    if len(tasks) == 0:
        raise ValueError("tasks is empty")
    is_correct = _correct_fn(correct)
    templates = templates or templates_for(domain)
    chains = [task for task in tasks for _ in range(samples)]  # task-major
    scores = np.zeros((len(chains), iterations + 1))
    answers: list[str] = []
    notes: list[str | None] = []
    for step in range(iterations + 1):
        if step == 0:
            prompts = [base_messages(t["prompt"], templates) for t in chains]
        else:
            prompts = [
                render_messages(t["prompt"], prev, "improve", templates, error=note)
                for t, prev, note in zip(chains, answers, notes, strict=True)
            ]
        answers = list(generate(prompts))
        if len(answers) != len(chains) or not all(isinstance(a, str) for a in answers):
            raise ValueError(f"generate must return {len(chains)} strings, got {len(answers)}")
        scores[:, step] = [float(reward_fn(t, a)) for t, a in zip(chains, answers, strict=True)]
        notes = [
            feedback(t, a) if feedback is not None else None
            for t, a in zip(chains, answers, strict=True)
        ]
        if on_step is not None:
            on_step(step, float(scores[:, step].mean()))
    return _summary(scores, is_correct, len(tasks), samples, iterations)


def _summary(
    scores: np.ndarray, is_correct: Callable[[float], bool], n_tasks: int, samples: int, k: int
) -> dict[str, Any]:
    right = np.vectorize(is_correct, otypes=[bool])(scores)
    accuracy = right.mean(axis=0)
    fixed = (~right[:, :-1] & right[:, 1:]).sum(axis=0)  # wrong → right at steps 1..K
    broken = (right[:, :-1] & ~right[:, 1:]).sum(axis=0)  # right → wrong
    net = np.concatenate([[0.0], np.cumsum(fixed - broken) / samples])
    return {
        "iterations": k,
        "samples": samples,
        "num_tasks": n_tasks,
        "mean": scores.mean(axis=0).tolist(),
        "accuracy": accuracy.tolist(),
        "best_so_far": np.maximum.accumulate(scores, axis=1).mean(axis=0).tolist(),
        "net_corrections": net.tolist(),
        "corrections": np.concatenate([[0.0], fixed / samples]).tolist(),
        "regressions": np.concatenate([[0.0], broken / samples]).tolist(),
        "first_step_accuracy": float(accuracy[0]),
        "final_accuracy": float(accuracy[-1]),
        "accuracy_gain": float(accuracy[-1] - accuracy[0]),
        "scores": scores.reshape(n_tasks, samples, k + 1).tolist(),
    }


def _correct_fn(correct: Correct) -> Callable[[float], bool]:
    if callable(correct):
        return lambda score: bool(correct(score))
    if isinstance(correct, bool) or not isinstance(correct, (int, float)):
        raise ValueError(f"correct must be a number (threshold) or a predicate, got {correct!r}")
    threshold = float(correct)
    return lambda score: score >= threshold


def _check_count(name: str, value: Any, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")
