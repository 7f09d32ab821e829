"""verl's real trainer on a CPU-only machine.

Switch: `VERL_PLATFORM=cpu` in the environment of the process that starts verl. The package's
`verl.plugins` entry point (`exit_verl.verl.cpu.plugin`) then registers, in every verl process:
a `cpu` platform (torch.device("cpu"), gloo, a `verl_cpu` Ray resource instead of GPUs), verl's
FSDP engines for the cpu device, and a `transformers` rollout backend whose server generates with
a `transformers` model (`decoding.py`) and receives the actor's weights (or LoRA adapter) after
every update.

`cpu_overrides()` is the matching set of verl config overrides (fp32, sdpa, no flash-attn
padding removal, small worker counts, the Ray resources); add the model, data, algorithm and
batch sizes of the run. `python -m exit_verl.verl.cpu` prints them, one per line.

This module imports nothing heavy (no verl, no torch).
"""

from __future__ import annotations

import os

PLATFORM_ENV = {"VERL_PLATFORM": "cpu"}


def job_env(tracker: str | os.PathLike[str]) -> dict[str, str]:
    """This process's environment for one verl job on the CPU path: the platform switch,
    offline model loading, verl's file tracker at `tracker`, unbuffered output, and always a
    private Ray cluster (no RAY_ADDRESS)."""
    env = dict(os.environ)
    env.update(
        PLATFORM_ENV,
        HF_HUB_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
        VERL_FILE_LOGGER_PATH=str(tracker),
        PYTHONUNBUFFERED="1",
    )
    env.pop("RAY_ADDRESS", None)
    return env


def _router_config() -> str:
    from pathlib import Path

    return str(Path(__file__).with_name("router.yaml"))


def cpu_overrides(
    *,
    workers: int = 1,
    micro_batch_size: int = 4,
    logical_cpus: int = 16,
    max_num_seqs: int = 64,
) -> list[str]:
    """Hydra overrides that run `verl.trainer.main_ppo` on the CPU path.

    Args:
        workers: trainer processes (data-parallel ranks); each serves its own rollout replica.
        micro_batch_size: rows per forward/backward in the update and the log-prob passes.
        logical_cpus: CPUs Ray may schedule against. Only a count: verl reserves three per
            worker bundle (more than a 2-core machine reports); nothing pins cores.
        max_num_seqs: most requests the rollout server generates in one batch.
    """
    if workers < 1 or micro_batch_size < 1 or max_num_seqs < 1:
        raise ValueError("workers, micro_batch_size and max_num_seqs must be >= 1")
    if logical_cpus < 3 * workers + 4:
        raise ValueError(f"logical_cpus must be >= {3 * workers + 4} for {workers} worker(s)")
    fp32 = "{param_dtype:fp32,reduce_dtype:fp32,buffer_dtype:fp32}"
    return [
        # Platform, Ray and process counts.
        "trainer.device=cpu",
        "trainer.nnodes=1",
        f"trainer.n_gpus_per_node={workers}",
        f"ray_kwargs.ray_init.num_cpus={logical_cpus}",
        f"+ray_kwargs.ray_init.resources={{verl_cpu:{workers}}}",
        "+ray_kwargs.ray_init.include_dashboard=false",
        # verl creates every worker it needs; idle workers started ahead would only hold memory.
        "+ray_kwargs.ray_init._system_config={prestart_worker_first_driver:false}",
        "+ray_kwargs.ray_init.runtime_env.env_vars.VERL_PLATFORM=cpu",
        "+ray_kwargs.ray_init.runtime_env.env_vars.OMP_WAIT_POLICY=PASSIVE",
        "actor_rollout_ref.rollout.agent.num_workers=1",
        "reward.num_workers=1",
        "transfer_queue.backend.SimpleStorage.num_data_storage_units=1",
        "data.dataloader_num_workers=0",
        # Model numerics: fp32 everywhere, sdpa attention, padded (not flash-attn packed) batches.
        "actor_rollout_ref.model.use_remove_padding=false",
        "+actor_rollout_ref.model.override_config.attn_implementation=sdpa",
        "actor_rollout_ref.actor.strategy=fsdp2",
        f"+actor_rollout_ref.actor.fsdp_config.mixed_precision={fp32}",
        f"+actor_rollout_ref.ref.fsdp_config.mixed_precision={fp32}",
        "actor_rollout_ref.actor.use_torch_compile=false",
        "actor_rollout_ref.actor.fsdp_config.use_torch_compile=false",
        "actor_rollout_ref.ref.fsdp_config.use_torch_compile=false",
        # Micro-batching of the update and of the log-prob passes.
        f"actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu={micro_batch_size}",
        f"actor_rollout_ref.rollout.log_prob_micro_batch_size_per_gpu={micro_batch_size}",
        f"actor_rollout_ref.ref.log_prob_micro_batch_size_per_gpu={micro_batch_size}",
        # The transformers rollout: fp32, weights loaded from the model path at start.
        "actor_rollout_ref.rollout.name=transformers",
        "actor_rollout_ref.rollout.tensor_model_parallel_size=1",
        "actor_rollout_ref.rollout.dtype=float32",
        "actor_rollout_ref.rollout.load_format=auto",
        f"actor_rollout_ref.rollout.max_num_seqs={max_num_seqs}",
        # The request router's process holds only Ray instead of verl, torch and transformers.
        f"actor_rollout_ref.rollout.router_config_path={_router_config()}",
    ]


def main() -> None:
    print("\n".join(cpu_overrides()))


if __name__ == "__main__":
    main()
