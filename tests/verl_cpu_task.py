"""Task of the CPU end-to-end tests: addition prompts in verl's parquet layout, and a reward
function verl loads by path (`reward.custom_reward_function.path`).

The reward gives a random-weight model something to learn: 1 for the right sum, else a small
credit for the share of ASCII letters and digits in the response (random tokens decode to
varied text), so responses of one group differ in reward and GRPO's advantages are not zero.
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
    return 0.1 * sum(ch.isascii() and ch.isalnum() for ch in text) / len(text)


def main_ppo_command(
    *,
    python: str,
    model: Path,
    data: Path,
    run_dir: Path,
    steps: int,
    extra: list[str] = (),
    mode: str = "sync",
) -> list[str]:
    """Stock `python -m verl.trainer.main_ppo` (GRPO in trainer mode `mode`, verl's sync by
    default) on the CPU path."""
    from exit_verl.verl.cpu import cpu_overrides

    return [
        python,
        "-m",
        "verl.trainer.main_ppo",
        *cpu_overrides(micro_batch_size=4),
        "algorithm.adv_estimator=grpo",
        f"trainer.v1.trainer_mode={mode}",
        f"data.train_files={data / 'train.parquet'}",
        f"data.val_files={data / 'val.parquet'}",
        f"actor_rollout_ref.model.path={model}",
        f"reward.custom_reward_function.path={Path(__file__).resolve()}",
        "reward.custom_reward_function.name=compute_score",
        "trainer.logger=[console,file]",
        "trainer.project_name=exit_verl_cpu",
        f"trainer.experiment_name={run_dir.name}",
        f"trainer.default_local_dir={run_dir / 'checkpoints'}",
        f"trainer.total_training_steps={steps}",
        "trainer.test_freq=-1",
        *extra,
    ]
