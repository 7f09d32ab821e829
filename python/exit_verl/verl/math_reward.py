"""The math reward as verl loads it: `reward.custom_reward_function.path=pkg://exit_verl.verl.math_reward`
(or this file's path) with `reward.custom_reward_function.name=compute_score`.

verl's reward loop calls `compute_score(data_source, solution_str, ground_truth, extra_info)`
for every response, from an executor thread of its reward workers. The score is the paper's
math reward (App. A.2): 1 when the response's last `\\boxed{}` answer equals `ground_truth` by
math-verify, else 0 (`exit_verl.domains.math.score`), for every data source. The keyword
`timeout_s` (default 5) can be set through `reward.custom_reward_function.reward_kwargs`.
"""

from __future__ import annotations

from typing import Any

from exit_verl.domains import math as math_domain


def compute_score(
    data_source: str,
    solution_str: str,
    ground_truth: Any,
    extra_info: Any = None,
    timeout_s: float = math_domain.DEFAULT_TIMEOUT_S,
    **kwargs: Any,
) -> float:
    return math_domain.score(solution_str, str(ground_truth), timeout_s=timeout_s)
