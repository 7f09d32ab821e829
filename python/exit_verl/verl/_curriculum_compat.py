"""Adapters over the curriculum API while it changes (issue 10); delete once it has landed.

The verl plugin is written against shared/DESIGN.md's curriculum contract:
`ExItConfig.preset(name, domain)`, `observe(...)` returning a feedback object with `rewards`
and `advantage_scale`, `TaskInstance.render(templates, attempt)` and
`evaluate_self_improvement(..., samples=n)`. Each function here uses that API when the
installed curriculum has it and falls back to the previous one otherwise.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from typing import Any

import numpy as np

from exit_verl.config import ExItConfig

PRESET_NAMES = ("grpo", "curriculum", "improve", "diverge", "exit")


def preset_config(name: str, domain: str) -> ExItConfig:
    preset = getattr(ExItConfig, "preset", None)
    if preset is not None:
        return preset(name, domain)
    if name not in PRESET_NAMES:
        raise ValueError(f"unknown ExIt preset {name!r}; known: {', '.join(PRESET_NAMES)}")
    # Previous API: one configuration; "grpo" never replays.
    return ExItConfig(domain=domain, p_replay=0.0 if name == "grpo" else 0.5)


def render_with_attempt(curriculum: Any, inst: Any, attempt: str) -> list[dict[str, str]]:
    """`inst`'s prompt with its previous attempt replaced by `attempt`."""
    if hasattr(inst, "render"):
        return inst.render(curriculum.templates, attempt)
    from exit_verl.prompts import iteration_messages

    task = curriculum.tasks[inst.base_index]["prompt"]
    return iteration_messages(task, attempt, inst.kind, curriculum.templates, len(attempt) + 16)


def observe(
    curriculum: Any,
    batch: Sequence[Any],
    responses: Sequence[Sequence[str]],
    rewards: np.ndarray,
    step: int,
) -> tuple[np.ndarray, np.ndarray]:
    """(training rewards, advantage scale), both (n, G)."""
    out = curriculum.observe(batch, responses, rewards, step)
    if hasattr(out, "advantage_scale"):
        return np.asarray(out.rewards, dtype=np.float64), np.asarray(
            out.advantage_scale, dtype=np.float64
        )
    shaped = np.asarray(out, dtype=np.float64)
    return shaped, np.ones_like(shaped)


def evaluate(
    generate: Any, reward_fn: Any, tasks: Sequence[Any], iterations: int, samples: int, templates
) -> dict[str, Any]:
    from exit_verl.evaluation import evaluate_self_improvement

    kwargs: dict[str, Any] = {"templates": templates}
    if "samples" in inspect.signature(evaluate_self_improvement).parameters:
        kwargs["samples"] = samples
    elif samples != 1:
        raise ValueError("exit.val_samples > 1 needs the avg@n evaluation of the curriculum")
    return evaluate_self_improvement(generate, reward_fn, tasks, iterations, **kwargs)


def render_improve(templates: Any, task_prompt: Any, attempt: str) -> list[dict[str, str]]:
    """The "improve" prompt of `evaluate_self_improvement` for one task and attempt."""
    from exit_verl import prompts

    if hasattr(prompts, "render_messages"):
        return prompts.render_messages(task_prompt, attempt, "improve", templates)
    return prompts.iteration_messages(task_prompt, attempt, "improve", templates, len(attempt) + 16)
