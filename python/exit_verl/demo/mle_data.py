"""The ML-engineering demo's tasks as verl datasets: one row per competition.

A row's prompt is the mle prompt family's system message and the competition's task text
(`Task.prompt`); `reward_model.ground_truth` is the competition's `Task.ref`, which the reward
function (`exit_verl/verl/mle_reward.py`) runs the response's script against. The training set
is by default a single competition — a run from one task instance, whose archive grows the
task space from it (paper §5) — and the held-out competitions are the validation set.
"""

from __future__ import annotations

from pathlib import Path

from exit_verl.demo.data import HELDOUT_FILE, TRAIN_FILE, write_checked

DATA_SOURCE = "exit_verl/mle"
# A fresh `exit-verl demo --domain mle` starts from these (any other source still wins): the
# paper's Table 6 "ExIt" column (N = 24, B_min = 3, p = 0.5, p_div = 0.5, improvement reward),
# room for a short script and an error trace in the prompt, and K = 16 improvement steps at
# evaluation (paper §5.3) on one held-out competition, after training only: 17 sequential
# generations take most of a short CPU run (`exit-verl eval` adds the base model's).
DEMO_DEFAULTS = {
    "exit": {"preset": "exit", "domain": "mle"},
    "prompts_per_step": 2,
    "group_size": 4,
    "micro_batch_size": 4,
    "max_new_tokens": 160,
    "max_prompt_tokens": 896,
    "eval": {"tasks": 1, "iterations": 16, "before_train": False},
}


def rows(refs: list[str], timeout_s: float) -> list[dict]:
    from exit_verl.domains import mle
    from exit_verl.prompts import templates_for

    system = templates_for("mle").system
    out = []
    for i, ref in enumerate(refs):
        task = mle.get_task(ref)
        out.append(
            {
                "data_source": DATA_SOURCE,
                "prompt": [
                    {"role": "system", "content": system},
                    {"role": "user", "content": task.prompt(timeout_s)},
                ],
                "ability": "mle",
                "reward_model": {"style": "rule", "ground_truth": task.ref},
                "extra_info": {"index": i, "competition": task.name},
            }
        )
    return out


def mle_task_files(
    folder: Path, *, train: list[str], heldout: list[str], timeout_s: float
) -> dict[str, Path]:
    """Writes (or checks) `train.parquet` and `heldout.parquet` for these competitions."""
    overlap = sorted(set(train) & set(heldout))
    if overlap:
        raise ValueError(f"mle.train and mle.heldout share competitions {overlap}")
    wanted = {TRAIN_FILE: rows(train, timeout_s), HELDOUT_FILE: rows(heldout, timeout_s)}
    return write_checked(folder, wanted)


def check_sandbox(allow_unsandboxed: bool, log=print) -> None:
    """Fails before any verl process starts when scripts could not run sandboxed (and the
    user did not opt in to running them without a sandbox); says so loudly if they opted in."""
    from exit_verl.domains import mle

    problem = mle.sandbox_problem()
    if problem is None:
        return
    if not (allow_unsandboxed or mle.SandboxSettings().unsandboxed_allowed):
        raise ValueError(f"the ML-engineering domain cannot run its sandbox here: {problem}")
    log(
        "WARNING: model-written scripts will run WITHOUT A SANDBOX (mle.allow_unsandboxed / "
        f"{mle.UNSANDBOXED_ENV}): they can read and change your files and use the network. "
        f"Reason: {problem}"
    )


def reward_overrides(settings, run_dir: Path) -> list[str]:
    """verl overrides of an mle run: the sandbox settings as reward-function keyword
    arguments (with a log of every script run, `sandbox.jsonl`), and verl's rollout dump (each
    step's prompts and responses) in the run folder."""
    from exit_verl.demo.command import hydra_value

    kwargs = {
        "timeout_s": settings.timeout_s,
        "concurrency": settings.concurrency or None,
        "memory_mb": settings.memory_mb,
        "feedback_chars": settings.feedback_chars,
        "allow_unsandboxed": settings.allow_unsandboxed,
        "log_path": str(run_dir / "sandbox.jsonl"),
    }
    prefix = "+reward.custom_reward_function.reward_kwargs"
    return [f"{prefix}.{k}={hydra_value(v)}" for k, v in kwargs.items()] + [
        f"trainer.rollout_data_dir={hydra_value(str(run_dir / 'rollouts'))}"
    ]
