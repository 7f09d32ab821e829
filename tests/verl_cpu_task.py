"""Task of the CPU end-to-end tests: addition prompts in verl's parquet layout, and a reward
function verl loads by path (`reward.custom_reward_function.path`).

The reward gives a random-weight model something to learn: 1 for the right sum, else a small
credit for the share of digits in the response, so responses of one group differ in reward
and GRPO's advantages are not all zero.
"""

from __future__ import annotations

from pathlib import Path

DATA_SOURCE = "exit_verl/addition"


def build_parquet(path: Path, rows: int, seed: int = 0) -> Path:
    import random

    import pandas as pd

    rng = random.Random(seed)
    records = []
    for index in range(rows):
        a, b = rng.randint(1, 9), rng.randint(1, 9)
        records.append(
            {
                "data_source": DATA_SOURCE,
                "prompt": [{"role": "user", "content": f"What is {a}+{b}? Answer with a number."}],
                "ability": "math",
                "reward_model": {"style": "rule", "ground_truth": str(a + b)},
                "extra_info": {"index": index},
            }
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(records).to_parquet(path)
    return path


def compute_score(data_source, solution_str, ground_truth, extra_info=None, **kwargs) -> float:
    text = solution_str.strip()
    if text.split() and text.split()[0].strip(".") == ground_truth:
        return 1.0
    if not text:
        return 0.0
    return 0.1 * sum(ch.isdigit() for ch in text) / len(text)
