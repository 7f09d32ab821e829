"""`exit/` metrics aggregated over one training step.

Within one verl step the curriculum is asked for prompts several times when verl refills
(group filtering and the async modes fetch one prompt at a time) and observes groups more
than once (dropped groups when verl drops them, the trained ones at each local update), so
per-call metrics would describe whichever call came last. `StepStats` counts every prompt
issued and every group observed during the step and reports step-level means, maxima and
sums. A group observed at a later step than it was issued at (async modes) counts its
staleness, steps between issue and observation.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from exit_verl.curriculum_metrics import CurriculumMetrics


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
    # dropped groups by verl's reason: "filtered", "stale", "failed", "surplus"
    dropped_by_reason: dict[str, int] = field(default_factory=dict)
    staleness_sum: int = 0
    staleness_max: int = 0
    observe_seconds: float = 0.0
    samples: int = 0
    task_reward_sum: float = 0.0
    training_reward_sum: float = 0.0
    bonus_sum: float = 0.0
    # The observe calls' group metrics: means weighted by group count, and summed counts.
    learnability_sum: float = 0.0
    informative_sum: float = 0.0
    children_added: float = 0.0
    children_rejected: float = 0.0

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
        curriculum_metrics: CurriculumMetrics,
        trained: bool,
        reason: str | None = None,
        staleness: Sequence[int] = (),
    ) -> None:
        groups = task_rewards.shape[0]
        if trained:
            self.groups_trained += groups
        else:
            self.groups_dropped += groups
            key = reason or "filtered"
            self.dropped_by_reason[key] = self.dropped_by_reason.get(key, 0) + groups
        self.staleness_sum += int(sum(staleness))
        self.staleness_max = max([self.staleness_max, *staleness])
        self.samples += task_rewards.size
        self.task_reward_sum += float(task_rewards.sum())
        self.training_reward_sum += float(training_rewards.sum())
        self.bonus_sum += float(np.abs(scale - 1.0).sum())
        observed = curriculum_metrics.observed  # this call's groups
        self.learnability_sum += groups * observed.learnability_mean
        self.informative_sum += groups * observed.informative_fraction
        self.children_added += observed.children_added
        self.children_rejected += observed.children_rejected

    def metrics(self, curriculum_metrics: CurriculumMetrics) -> dict[str, float]:
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
            "group_staleness_mean": self.staleness_sum / max(groups, 1),
            "group_staleness_max": float(self.staleness_max),
            "task_reward_mean": self.task_reward_sum / samples,
            "training_reward_mean": self.training_reward_sum / samples,
            "bonus_magnitude": self.bonus_sum / samples,
        }
        if self.samples:  # observed groups this step
            out["learnability_mean"] = self.learnability_sum / max(groups, 1)
            out["informative_fraction"] = self.informative_sum / max(groups, 1)
            out["children_added"] = self.children_added
            out["children_rejected"] = self.children_rejected
        for reason, count in self.dropped_by_reason.items():
            out[f"groups_dropped_{reason}"] = float(count)
        out.update(asdict(curriculum_metrics.archive))  # the archive at the end of the step
        return {f"exit/{k}": v for k, v in out.items()}
