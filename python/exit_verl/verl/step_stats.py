"""`exit/` metrics aggregated over one training step.

Within one verl step the curriculum is asked for prompts several times when verl refills
(group filtering fetches one prompt at a time) and observes groups more than once (dropped
groups when verl drops them, the trained ones at the advantage step), so per-call metrics
would describe whichever call came last. `StepStats` counts every prompt issued and every
group observed during the step and reports step-level means, maxima and sums.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

# Curriculum metrics after an observe call that describe that call's groups: averaged over
# the step's groups, weighted by group count.
GROUP_MEANS = ("learnability_mean", "informative_fraction")
# ... and counts of that call: summed over the step.
GROUP_SUMS = ("children_added", "children_rejected")
# Curriculum state (archive size, evictions, epoch...): the value at the end of the step.
STATE_KEYS = (
    "archive_size",
    "archive_evicted",
    "archive_rejected",
    "archive_depth_max",
    "archive_score_mean",
    "archive_distinct",
    "epoch",
)


@dataclass
class StepStats:
    prompts: int = 0
    replays: int = 0
    diverge: int = 0
    improve: int = 0
    depth_sum: int = 0
    depth_max: int = 0
    clipped: int = 0
    over_budget: int = 0
    groups_trained: int = 0
    groups_dropped: int = 0
    groups_lost: int = 0
    samples: int = 0
    task_reward_sum: float = 0.0
    training_reward_sum: float = 0.0
    bonus_sum: float = 0.0
    group_means: dict[str, float] = field(default_factory=dict)
    group_sums: dict[str, float] = field(default_factory=dict)

    def on_issue(self, instances: Sequence[Any], clipped: int, over_budget: int) -> None:
        for inst in instances:
            self.prompts += 1
            self.replays += inst.archive_id is not None
            self.diverge += inst.kind == "diverge"
            self.improve += inst.kind == "improve"
            self.depth_sum += int(inst.depth)
            self.depth_max = max(self.depth_max, int(inst.depth))
        self.clipped += clipped
        self.over_budget += over_budget

    def on_observe(
        self,
        task_rewards: np.ndarray,
        training_rewards: np.ndarray,
        scale: np.ndarray,
        curriculum_metrics: Mapping[str, float],
        trained: bool,
    ) -> None:
        groups = task_rewards.shape[0]
        if trained:
            self.groups_trained += groups
        else:
            self.groups_dropped += groups
        self.samples += task_rewards.size
        self.task_reward_sum += float(task_rewards.sum())
        self.training_reward_sum += float(training_rewards.sum())
        self.bonus_sum += float(np.abs(scale - 1.0).sum())
        for key in GROUP_MEANS:
            if key in curriculum_metrics:
                self.group_means[key] = self.group_means.get(key, 0.0) + groups * float(
                    curriculum_metrics[key]
                )
        for key in GROUP_SUMS:
            if key in curriculum_metrics:
                self.group_sums[key] = self.group_sums.get(key, 0.0) + float(
                    curriculum_metrics[key]
                )

    def metrics(self, curriculum_metrics: Mapping[str, float]) -> dict[str, float]:
        """Step-level values under `exit/`."""
        prompts = max(self.prompts, 1)
        groups = self.groups_trained + self.groups_dropped
        samples = max(self.samples, 1)
        out = {
            "prompts": float(self.prompts),
            "replay_fraction": self.replays / prompts,
            "diverge_fraction": self.diverge / prompts,
            "improve_fraction": self.improve / prompts,
            "depth_mean": self.depth_sum / prompts,
            "depth_max": float(self.depth_max),
            "prompts_clipped": float(self.clipped),
            "prompts_over_budget": float(self.over_budget),
            "groups_trained": float(self.groups_trained),
            "groups_dropped": float(self.groups_dropped),
            "groups_lost": float(self.groups_lost),
            "task_reward_mean": self.task_reward_sum / samples,
            "training_reward_mean": self.training_reward_sum / samples,
            "bonus_magnitude": self.bonus_sum / samples,
        }
        for key, total in self.group_means.items():
            out[key] = total / max(groups, 1)
        out.update(self.group_sums)
        for key in STATE_KEYS:
            if key in curriculum_metrics:
                out[key] = float(curriculum_metrics[key])
        return {f"exit/{k}": v for k, v in out.items()}
