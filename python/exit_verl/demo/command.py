"""The verl command lines of the demo: stock `python -m verl.trainer.main_ppo` in trainer
mode "exit" on the CPU path (`exit_verl.verl.cpu`), the same entry point as a GPU run.

`train_command` trains (resuming from the run's latest checkpoint if there is one) and
validates with multi-step self-improvement (`+exit.val_iterations`) before training and after
the last step; `eval_command` is verl's `trainer.val_only=true` on a checkpoint (or on the
base model), so evaluation during and after training is one code path.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from exit_verl.demo.config import DemoConfig
from exit_verl.demo.domains import DOMAINS
from exit_verl.demo.run_folder import checkpoints

PROJECT = "exit_verl_demo"


def model_path(model: str) -> Path:
    """The HF folder verl loads: built once into the model cache for the named models.

    The build (GGUF dequantization for SmolLM2) runs in a child process: done in this one it
    would keep ~1.6 GB of torch and transformers resident for the whole verl job.
    """
    builders = {"smollm2": "smollm2_path", "tiny": "tiny_llama_path"}
    if model not in builders:
        return Path(model).expanduser().resolve()
    code = f"from exit_verl.models import {builders[model]} as p; print(p())"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"building the {model} model folder failed:\n{done.stderr[-3000:]}")
    return Path(done.stdout.strip().splitlines()[-1])


def reward_file(cfg: DemoConfig) -> Path:
    if cfg.reward:
        return Path(cfg.reward).expanduser().resolve()
    return DOMAINS[cfg.domain].reward_file


def hydra_value(value: Any) -> str:
    """A Python value as a hydra override value (strings quoted, so any text survives)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(hydra_value(v) for v in value) + "]"
    if isinstance(value, str):
        escaped = value.replace("\\", "\\\\").replace("'", "\\'")
        return f"'{escaped}'"
    raise ValueError(f"cannot pass {value!r} to verl as an override")


def exit_overrides(exit_node: Mapping[str, Any], cfg: DemoConfig) -> list[str]:
    """`+exit.*`: the curriculum settings, and the multi-step validation from `eval.*`."""
    values = dict(exit_node)
    values.update(
        val_iterations=cfg.eval.iterations,
        val_samples=cfg.eval.samples,
        val_max_tasks=cfg.eval.tasks,
    )
    return [f"+exit.{key}={hydra_value(value)}" for key, value in values.items()]


def _common(cfg: DemoConfig, run_dir: Path, model: Path, hydra_dir: Path) -> list[str]:
    from exit_verl.verl.cpu import cpu_overrides

    sampled = cfg.eval.samples > 1
    val_temperature = cfg.eval.temperature if sampled else 0
    lora = (
        [
            f"actor_rollout_ref.model.lora_rank={cfg.lora_rank}",
            f"actor_rollout_ref.model.lora_alpha={cfg.lora_alpha}",
        ]
        if cfg.lora_rank
        else []
    )
    return [
        sys.executable,
        "-m",
        "verl.trainer.main_ppo",
        *cpu_overrides(micro_batch_size=cfg.micro_batch_size),
        "algorithm.adv_estimator=grpo",
        "trainer.v1.trainer_mode=exit",
        f"data.train_files={hydra_value(str(run_dir / 'train.parquet'))}",
        f"data.val_files={hydra_value(str(run_dir / 'heldout.parquet'))}",
        f"data.train_batch_size={cfg.prompts_per_step}",
        f"data.max_prompt_length={cfg.max_prompt_tokens}",
        f"data.max_response_length={cfg.max_new_tokens}",
        f"data.seed={cfg.seed}",
        f"actor_rollout_ref.model.path={hydra_value(str(model))}",
        *lora,
        f"actor_rollout_ref.rollout.n={cfg.group_size}",
        f"actor_rollout_ref.rollout.temperature={cfg.temperature}",
        f"actor_rollout_ref.rollout.val_kwargs.do_sample={hydra_value(sampled)}",
        f"actor_rollout_ref.rollout.val_kwargs.temperature={val_temperature}",
        f"actor_rollout_ref.actor.ppo_mini_batch_size={cfg.prompts_per_step}",
        f"actor_rollout_ref.actor.optim.lr={cfg.learning_rate}",
        f"algorithm.rollout_correction.bypass_mode={hydra_value(cfg.bypass_mode)}",
        f"reward.custom_reward_function.path={hydra_value(str(reward_file(cfg)))}",
        "reward.custom_reward_function.name=compute_score",
        "trainer.logger=[console,file]",
        f"trainer.project_name={PROJECT}",
        f"trainer.experiment_name={hydra_value(run_dir.name or 'run')}",
        f"trainer.default_local_dir={hydra_value(str(checkpoints(run_dir)))}",
        f"trainer.total_training_steps={cfg.steps}",
        f"trainer.max_actor_ckpt_to_keep={cfg.keep_checkpoints}",
        f"hydra.run.dir={hydra_value(str(hydra_dir))}",
        *exit_overrides(cfg.exit, cfg),
        *DOMAINS[cfg.domain].verl_overrides(cfg, run_dir),
    ]


def train_command(
    cfg: DemoConfig, run_dir: Path, model: Path, hydra_dir: Path, *, resuming: bool
) -> list[str]:
    """Training (resumed from the latest checkpoint if any), validated after the last step and,
    on a fresh start, before the first (the base model: step 0 of metrics.jsonl)."""
    return [
        *_common(cfg, run_dir, model, hydra_dir),
        "trainer.resume_mode=auto",
        f"trainer.save_freq={cfg.save_every or cfg.steps}",
        f"trainer.test_freq={cfg.eval.every or cfg.steps}",
        f"trainer.val_before_train={hydra_value(cfg.eval.before_train and not resuming)}",
        *cfg.verl,
    ]


def eval_command(
    cfg: DemoConfig, run_dir: Path, model: Path, hydra_dir: Path, checkpoint: Path | None
) -> list[str]:
    """verl's validation only, on `checkpoint` (a `global_step_N` folder) or the base model."""
    resume = (
        [
            "trainer.resume_mode=resume_path",
            f"trainer.resume_from_path={hydra_value(str(checkpoint))}",
        ]
        if checkpoint is not None
        else ["trainer.resume_mode=disable"]
    )
    return [
        *_common(cfg, run_dir, model, hydra_dir),
        *resume,
        "trainer.val_only=true",
        "trainer.val_before_train=true",
        *cfg.verl,
    ]
