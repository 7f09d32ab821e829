"""Task of the CPU end-to-end tests: addition prompts in verl's parquet layout, a reward
function verl loads by path (`reward.custom_reward_function.path`), and `run_job`, which runs
one verl job on the CPU path and returns its tracker's metrics.

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


# Small enough for 2 shared cores: 4 prompts x 4 samples, 16 new tokens, 4 rows per micro-batch.
SMALL = [
    "data.train_batch_size=4",
    "data.max_prompt_length=96",
    "data.max_response_length=16",
    "actor_rollout_ref.rollout.n=4",
    "actor_rollout_ref.actor.ppo_mini_batch_size=4",
    "actor_rollout_ref.actor.optim.lr=1e-3",
]
JOB_TIMEOUT = 1200


def build_data(root: Path) -> Path:
    """The training (32 tasks) and validation (4 tasks) sets of the CPU e2e jobs."""
    build_parquet(root / "train.parquet", rows=32, seed=0)
    build_parquet(root / "val.parquet", rows=4, seed=1)
    return root


def run_job(
    run_dir: Path, *, steps: int, model: Path, data: Path, extra: list[str], mode: str = "sync"
) -> dict[int, dict]:
    """One verl job (a subprocess with its own Ray cluster): asserts it succeeded, prints its
    wall time and peak memory (pytest -s), returns its metrics per step."""
    import json
    import sys

    from exit_verl.demo.measure import run_measured
    from exit_verl.verl.cpu import job_env

    run_dir.mkdir(parents=True, exist_ok=True)
    command = main_ppo_command(
        python=sys.executable,
        model=model,
        data=data,
        run_dir=run_dir,
        steps=steps,
        extra=extra,
        mode=mode,
    )
    measured = run_measured(
        command,
        env=job_env(run_dir / "metrics.jsonl"),
        cwd=run_dir,
        log_path=run_dir / "log.txt",
        timeout=JOB_TIMEOUT,
    )
    print(f"\n[{run_dir.name}] {measured.summary()}")
    (run_dir / "measured.json").write_text(json.dumps(measured.__dict__))
    log_tail = (run_dir / "log.txt").read_text(errors="replace")[-4000:]
    assert measured.returncode == 0, f"{run_dir.name} failed:\n{log_tail}"
    return read_metrics(run_dir / "metrics.jsonl")


def read_metrics(path: Path) -> dict[int, dict]:
    """verl's file tracker: one JSON line per `Tracking.log` call, merged per step."""
    import json

    steps: dict[int, dict] = {}
    for line in path.read_text().splitlines():
        record = json.loads(line)
        steps.setdefault(record["step"], {}).update(record["data"])
    return steps


def training_steps(metrics: dict[int, dict]) -> list[int]:
    return sorted(s for s, m in metrics.items() if "training/global_step" in m)
