"""The CPU path's registration with verl, each case in a fresh interpreter (verl resolves its
platform once per process): off unless VERL_PLATFORM=cpu, and when on, what verl's own lookups
return; plus the config overrides composing with verl's hydra config."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest
from deps import need

need("verl")

from exit_verl.verl.cpu import cpu_overrides  # noqa: E402


def _python(code: str, *, platform: str | None, timeout: float = 300) -> dict:
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    env.pop("VERL_PLATFORM", None)
    if platform is not None:
        env["VERL_PLATFORM"] = platform
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_without_the_setting_import_verl_registers_nothing() -> None:
    out = _python(
        """
        import json, sys
        import verl
        from verl.plugin.platform.platform_manager import PlatformRegistry
        print(json.dumps({
            "cpu": "cpu" in PlatformRegistry.registered_names(),
            "loaded": sorted(m for m in sys.modules if m.startswith("exit_verl.verl.cpu")),
        }))
        """,
        platform=None,
    )
    assert out["cpu"] is False
    # Only the entry point (a no-op without the setting) and its light package.
    assert out["loaded"] == ["exit_verl.verl.cpu", "exit_verl.verl.cpu.plugin"]


def test_with_the_setting_verl_resolves_the_cpu_path() -> None:
    out = _python(
        """
        import json, os, socket
        import torch
        import verl
        from verl.utils import device
        from verl.workers.engine import EngineRegistry
        from verl.workers.rollout.base import get_rollout_class
        from verl.workers.rollout.replica import get_rollout_replica_class
        from verl.workers import engine_workers

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        os.environ.update(RANK="0", WORLD_SIZE="1", MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
        # verl's call as its training worker makes it, with no backend given.
        engine_workers.initialize_global_process_group_ray(timeout_second=None)
        print(json.dumps({
            "device": device.get_device_name(),
            "device_id": str(device.get_device_id()),
            "backend": device.get_nccl_backend(),
            "resource": device.get_resource_name(),
            "process_group": torch.distributed.get_backend(),
            "engine": EngineRegistry.get_engine_cls("language_model", "fsdp2").__name__,
            "adapter": get_rollout_class("transformers").__name__,
            "replica": get_rollout_replica_class("transformers").__name__,
            "omp_wait": os.environ.get("OMP_WAIT_POLICY"),
        }))
        """,
        platform="cpu",
    )
    assert out == {
        "device": "cpu",
        "device_id": "cpu",
        "backend": "gloo",
        "resource": "verl_cpu",
        "process_group": "gloo",
        "engine": "CPUFSDPEngineWithLMHead",
        "adapter": "TransformersServerAdapter",
        "replica": "TransformersReplica",
        "omp_wait": "PASSIVE",
    }


def test_the_reference_engine_offloads_unpinned_on_cpu() -> None:
    """verl builds its reference model with CPUOffloadPolicy(pin_memory=True); pinning needs a
    CUDA driver, so on the cpu platform verl's engine module builds it unpinned."""
    code = """
        import json
        import verl
        from verl.workers import engine  # registers the CPU engines, swaps the policy
        from verl.workers.engine.fsdp import transformer_impl
        policy = transformer_impl.CPUOffloadPolicy(pin_memory=True)
        print(json.dumps({"pin": policy.pin_memory, "type": type(policy).__name__}))
        """
    assert _python(code, platform="cpu") == {"pin": False, "type": "CPUOffloadPolicy"}
    assert _python(code, platform=None) == {"pin": True, "type": "CPUOffloadPolicy"}


def test_resource_check_counts_the_cpu_resource() -> None:
    out = _python(
        """
        import json
        import ray._private.state as state
        import verl
        from verl.single_controller.ray.base import ResourcePoolManager

        manager = ResourcePoolManager(resource_pool_spec={"global_pool": [2]}, mapping={})
        results = {}
        for offered in (1, 2):
            state.available_resources_per_node = lambda: {"node": {"CPU": 8.0, "verl_cpu": offered}}
            try:
                manager._check_resource_available()
                results[offered] = "ok"
            except ValueError as error:
                results[offered] = str(error)
        print(json.dumps(results))
        """,
        platform="cpu",
    )
    assert out["2"] == "ok"
    assert "needs 2" in out["1"] and "verl_cpu" in out["1"]


def test_overrides_compose_with_verls_config() -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "verl.trainer.main_ppo",
            "--cfg",
            "job",
            *cpu_overrides(workers=2, micro_batch_size=3),
        ],
        env=dict(os.environ, VERL_PLATFORM="cpu", HF_HUB_OFFLINE="1"),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    import yaml

    config = yaml.safe_load(done.stdout)
    rollout = config["actor_rollout_ref"]["rollout"]
    assert rollout["name"] == "transformers" and rollout["dtype"] == "float32"
    assert config["ray_kwargs"]["ray_init"]["resources"] == {"verl_cpu": 2}
    assert config["trainer"]["n_gpus_per_node"] == 2
    actor = config["actor_rollout_ref"]["actor"]
    assert actor["fsdp_config"]["mixed_precision"]["param_dtype"] == "fp32"
    assert actor["ppo_micro_batch_size_per_gpu"] == 3
    assert config["actor_rollout_ref"]["model"]["override_config"]["attn_implementation"] == "sdpa"


@pytest.mark.parametrize(
    "kwargs", [{"workers": 0}, {"micro_batch_size": 0}, {"max_num_seqs": 0}, {"logical_cpus": 4}]
)
def test_bad_override_arguments_raise(kwargs) -> None:
    with pytest.raises(ValueError):
        cpu_overrides(**kwargs)
