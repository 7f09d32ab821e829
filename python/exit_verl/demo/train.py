"""The CPU main job: ExIt GRPO on SmolLM2-135M, then multi-step self-improvement evaluation.

Outputs in the run folder: config.yaml, metrics.jsonl (one line per step), samples.jsonl (the
prompts and responses of each step, for inspection), archive.snap, adapter/ (LoRA weights),
eval.json and plots/*.png.
"""

from __future__ import annotations

import json
import os
import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from exit_verl.curriculum import KINDS, ExItCurriculum
from exit_verl.demo.config import DemoConfig
from exit_verl.demo.tasks import make_tasks, reward
from exit_verl.evaluation import evaluate_self_improvement

HELDOUT_SEED = 0


def _seed_everything(seed: int, threads: int) -> None:
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.set_num_threads(threads)


def _make_embedder(name: str, needed: bool):
    if not needed:
        return None
    from exit_verl.embedding import make_embedder

    return make_embedder(name)


def evaluate(policy, cfg: DemoConfig, templates, adapter: bool, log: Callable[[str], None]):
    """Multi-step self-improvement on held-out tasks, greedy decoding."""
    # One held-out set for every seed and arm, so runs are compared on the same tasks.
    heldout = make_tasks(cfg.eval_tasks, "heldout", HELDOUT_SEED, cfg.task_steps)

    def generate(prompts):
        rollout = policy.sample(
            prompts, 1, cfg.eval_max_new_tokens, temperature=0.0, adapter=adapter
        )
        return [group[0] for group in rollout.texts]

    name = "trained" if adapter else "base"
    return evaluate_self_improvement(
        generate,
        reward,
        heldout,
        cfg.eval_iterations,
        templates=templates,
        on_step=lambda t, mean: log(f"eval {name}: step {t} mean reward {mean:.3f}"),
    )


def deepest_trained_depth(run_dir: str | Path) -> int:
    """The deepest iteration depth of any prompt trained on, read from metrics.jsonl."""
    lines = (Path(run_dir) / "metrics.jsonl").read_text().splitlines()
    return max((max(json.loads(line)["depths"], default=0) for line in lines if line), default=0)


def run(
    cfg: DemoConfig,
    out: str | Path,
    log: Callable[[str], None] = print,
    eval_base: bool = True,
) -> dict[str, Any]:
    """Trains, evaluates and plots into `out`; returns the evaluation summary.

    `eval_base=False` skips the base model's evaluation (compare runs it once: with greedy
    decoding on the fixed held-out set it is the same for every seed and arm)."""
    import torch
    from tqdm import tqdm

    from exit_verl.demo.grpo import GrpoSettings, grpo_step
    from exit_verl.demo.model import Policy

    cfg.validate()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    _seed_everything(cfg.seed, cfg.threads)
    cfg.to_yaml(out / "config.yaml")
    tasks = make_tasks(cfg.train_tasks, "train", cfg.seed, cfg.task_steps)
    log("loading SmolLM2-135M-Instruct (GGUF, dequantized to float32) ...")
    policy = Policy(cfg.lora_rank, cfg.lora_alpha)
    embedder = _make_embedder(cfg.exit.embedder, cfg.exit.diversity_bonus != "none")
    curriculum = ExItCurriculum(cfg.exit, tasks, embedder=embedder, seed=cfg.seed)
    params = [p for p in policy.model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=cfg.learning_rate)
    settings = GrpoSettings(clip_ratio=cfg.clip_ratio, kl_coef=cfg.kl_coef, kl_type=cfg.kl_type)

    metrics_file = (out / "metrics.jsonl").open("w")
    samples_file = (out / "samples.jsonl").open("w")
    bar = tqdm(range(cfg.steps), desc="ExIt GRPO", unit="step", dynamic_ncols=True)
    for step in bar:
        t0 = time.perf_counter()
        batch = curriculum.next_batch(cfg.prompts_per_step, step)
        rollout = policy.sample(
            [b.prompt for b in batch], cfg.group_size, cfg.max_new_tokens, cfg.temperature
        )
        t_sample = time.perf_counter() - t0
        raw = np.array(
            [
                [reward({"answer": b.answer}, text) for text in group]
                for b, group in zip(batch, rollout.texts, strict=True)
            ]
        )
        shaped = curriculum.observe(batch, rollout.texts, raw, step).rewards
        t1 = time.perf_counter()
        update = grpo_step(policy, optimizer, rollout, shaped, settings)
        t_update = time.perf_counter() - t1
        record = {
            "step": step,
            "reward_mean": float(raw.mean()),
            "reward_max": float(raw.max()),
            "solved_fraction": float((raw == 1.0).mean()),
            "shaped_reward_mean": float(shaped.mean()),
            **curriculum.metrics(),
            **{f"kind_{k}": sum(b.kind == k for b in batch) for k in KINDS},
            "depths": [b.depth for b in batch],
            "response_tokens_mean": float(rollout.response_mask.sum(1).float().mean()),
            **update,
            "time_sample_s": t_sample,
            "time_update_s": t_update,
            "time_step_s": time.perf_counter() - t0,
        }
        metrics_file.write(json.dumps(record) + "\n")
        metrics_file.flush()
        for b, group, rewards in zip(batch, rollout.texts, raw.tolist(), strict=True):
            samples_file.write(
                json.dumps(
                    {
                        "step": step,
                        "kind": b.kind,
                        "depth": b.depth,
                        "archive_id": b.archive_id,
                        "prompt": b.prompt,
                        "previous_attempt": b.previous_attempt,
                        "responses": group,
                        "rewards": rewards,
                    }
                )
                + "\n"
            )
        samples_file.flush()
        bar.set_postfix(
            reward=f"{record['reward_mean']:.3f}",
            archive=int(record["archive_size"]),
            replay=f"{record['replay_fraction']:.2f}",
        )
    bar.close()
    metrics_file.close()
    samples_file.close()
    curriculum.archive.save(out / "archive.snap")
    policy.save_adapter(out / "adapter")

    log(f"evaluating {cfg.eval_iterations} improvement steps on {cfg.eval_tasks} held-out tasks")
    result = evaluate_and_plot(policy, cfg, curriculum.templates, out, log, eval_base)
    log(f"done: {out}/ (metrics.jsonl, archive.snap, adapter/, eval.json, plots/)")
    return result


def evaluate_and_plot(
    policy, cfg: DemoConfig, templates, run_dir: Path, log, eval_base: bool = True
) -> dict[str, Any]:
    """Evaluates the trained (and base) policy, writes eval.json and redraws the plots."""
    from exit_verl.demo.plots import plot_run

    result = {
        "iterations": cfg.eval_iterations,
        "max_training_depth": deepest_trained_depth(run_dir),
        "trained": evaluate(policy, cfg, templates, adapter=True, log=log),
    }
    if eval_base:
        result["base"] = evaluate(policy, cfg, templates, adapter=False, log=log)
    (run_dir / "eval.json").write_text(json.dumps(result, indent=1))
    plot_run(run_dir)
    return result


def evaluate_run(run_dir: str | Path, iterations: int | None = None, log=print) -> dict[str, Any]:
    """`exit-verl eval`: re-evaluates a finished run, optionally with more iterations."""
    from exit_verl.demo.model import Policy

    run_dir = Path(run_dir)
    if not (run_dir / "config.yaml").is_file() or not (run_dir / "adapter").is_dir():
        raise FileNotFoundError(f"{run_dir} is not a finished demo run (config.yaml, adapter/)")
    cfg = DemoConfig.from_yaml(run_dir / "config.yaml")
    if iterations is not None:
        if iterations < 0:
            raise ValueError("iterations must be >= 0")
        cfg.eval_iterations = iterations
    _seed_everything(cfg.seed, cfg.threads)
    policy = Policy(adapter=str(run_dir / "adapter"))
    return evaluate_and_plot(policy, cfg, cfg.exit.templates(), run_dir, log)
