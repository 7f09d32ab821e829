"""Multi-step self-improvement evaluation: answer, then improve the previous answer T times."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from exit_verl.prompts import Message, Templates, base_messages, iteration_messages, templates_for

Generate = Callable[[list[list[Message]]], list[str]]
RewardFn = Callable[[Mapping[str, Any], str], float]


def evaluate_self_improvement(
    generate: Generate,
    reward_fn: RewardFn,
    tasks: Sequence[Mapping[str, Any]],
    iterations: int,
    *,
    templates: Templates | None = None,
    domain: str = "math",
    clip_chars: int = 2000,
    on_step: Callable[[int, float], None] | None = None,
) -> dict[str, Any]:
    """Scores at every iteration step on held-out `tasks` (each with "prompt" and "answer").

    Step 0 is the answer to the base task; step t >= 1 asks the policy to improve its own answer
    from step t − 1 (the "improve" prompt of training). Returns `mean[t]` (mean score at step
    t), `best_so_far[t]` (mean over tasks of the best score up to step t) and the per-task
    `scores` matrix (tasks × (iterations + 1)).
    """
    if iterations < 0:
        raise ValueError(f"iterations must be >= 0, got {iterations}")
    if len(tasks) == 0:
        raise ValueError("tasks is empty")
    templates = templates or templates_for(domain)
    prompts = [base_messages(t["prompt"], templates) for t in tasks]
    scores = np.zeros((len(tasks), iterations + 1))
    answers: list[str] = []
    for step in range(iterations + 1):
        if step > 0:
            prompts = [
                iteration_messages(t["prompt"], prev, "improve", templates, clip_chars)
                for t, prev in zip(tasks, answers, strict=True)
            ]
        answers = list(generate(prompts))
        if len(answers) != len(tasks):
            raise ValueError(f"generate returned {len(answers)} answers for {len(tasks)} prompts")
        scores[:, step] = [float(reward_fn(t, a)) for t, a in zip(tasks, answers, strict=True)]
        if on_step is not None:
            on_step(step, float(scores[:, step].mean()))
    return {
        "iterations": iterations,
        "mean": scores.mean(axis=0).tolist(),
        "best_so_far": np.maximum.accumulate(scores, axis=1).mean(axis=0).tolist(),
        "scores": scores.tolist(),
    }
