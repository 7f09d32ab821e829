"""The demo's reward as verl loads it (`reward.custom_reward_function.path` = this file).

verl calls `compute_score(data_source, solution_str, ground_truth, extra_info)` for every
response, in its reward worker; the graded arithmetic reward is `exit_verl.demo.tasks.reward`.
"""

from __future__ import annotations

from typing import Any

from exit_verl.demo.tasks import reward


def compute_score(
    data_source: str, solution_str: str, ground_truth: str, extra_info: Any = None, **kwargs: Any
) -> float:
    return reward({"answer": ground_truth}, solution_str)
