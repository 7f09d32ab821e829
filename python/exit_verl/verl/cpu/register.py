"""Registers the CPU path with verl in the current process (`register()`).

Registration is lazy where verl's registries live in heavy modules: the FSDP engines, the
rollout registries and the two swapped functions are hooked in right after verl imports the
module that defines them (`when_imported`), so `import verl` stays as cheap as without the CPU
path and only the processes that train or serve pay for those imports.

verl hooks used: the platform registry (`PlatformRegistry.register("cpu")`, selected by
`VERL_PLATFORM=cpu`), the engine registry (`EngineRegistry.register(..., device="cpu")`), the
rollout registries (`_ROLLOUT_REGISTRY`, `RolloutReplicaRegistry.register`).

verl functions swapped, each because no hook exists:
1. `verl.utils.distributed.initialize_global_process_group_ray`: its default backend string
   `"cpu:gloo,{device}:{backend}"` becomes the invalid `"cpu:gloo,cpu:gloo"` when the device is
   the CPU; on the cpu platform the default becomes plain `"gloo"`.
2. `ResourcePoolManager._check_resource_available`: it counts only Ray's `GPU`/`NPU`
   resources, so it would reject a cluster whose workers reserve the cpu platform's resource;
   on the cpu platform it counts that resource instead.
3. `CPUOffloadPolicy` as verl's FSDP engine module names it: verl builds a reference policy
   (forward only) with `CPUOffloadPolicy(pin_memory=True)`, and pinning memory needs a CUDA
   driver; on the cpu platform the policy is built unpinned (the parameters live in CPU memory
   anyway).
"""

from __future__ import annotations

import logging
import os
from types import ModuleType

from exit_verl.verl.import_hook import when_imported

logger = logging.getLogger(__name__)

_registered = False


def _on_cpu() -> bool:
    from verl.plugin.platform import get_platform

    from exit_verl.verl.cpu.platform import CPUPlatform

    return isinstance(get_platform(), CPUPlatform)


def _gloo_process_group(module: ModuleType) -> None:
    original = module.initialize_global_process_group_ray

    def initialize_global_process_group_ray(timeout_second=None, backend=None):  # noqa: ANN001
        # Swapped by exit_verl.verl.cpu: verl's default "cpu:gloo,cpu:gloo" is invalid on CPU.
        if backend is None and _on_cpu():
            backend = "gloo"
        return original(timeout_second=timeout_second, backend=backend)

    initialize_global_process_group_ray.__wrapped__ = original
    module.initialize_global_process_group_ray = initialize_global_process_group_ray


def _count_cpu_resource(module: ModuleType) -> None:
    manager = module.ResourcePoolManager
    original = manager._check_resource_available

    def _check_resource_available(self) -> None:  # noqa: ANN001
        # Swapped by exit_verl.verl.cpu: verl counts only GPU/NPU; count the platform resource.
        if not _on_cpu():
            return original(self)
        import ray

        from exit_verl.verl.cpu.platform import RAY_RESOURCE

        available = sum(
            node.get(RAY_RESOURCE, 0)
            for node in ray._private.state.available_resources_per_node().values()
        )
        required = sum(sum(nodes) for nodes in self.resource_pool_spec.values())
        if available < required:
            raise ValueError(
                f"Ray offers {available} {RAY_RESOURCE!r} slots but the run needs {required}: "
                f"start Ray with resources={{'{RAY_RESOURCE}': {required}}} "
                "(exit_verl.verl.cpu.cpu_overrides() does)"
            )

    _check_resource_available.__wrapped__ = original
    manager._check_resource_available = _check_resource_available


def _unpinned_offload(module: ModuleType) -> None:
    original = module.CPUOffloadPolicy
    if original is None:  # a torch without FSDP2
        return

    def CPUOffloadPolicy(pin_memory: bool = True):  # noqa: N802 - stands in for the class
        # Swapped by exit_verl.verl.cpu: pinned memory needs a CUDA driver.
        return original(pin_memory=pin_memory and not _on_cpu())

    CPUOffloadPolicy.__wrapped__ = original
    module.CPUOffloadPolicy = CPUOffloadPolicy


def _register_engines(module: ModuleType) -> None:
    from exit_verl.verl.cpu.engine import register_engines

    register_engines(module.EngineRegistry)


def _register_rollout_adapter(module: ModuleType) -> None:
    from exit_verl.verl.cpu.rollout_names import ADAPTER, ROLLOUT_NAME

    module._ROLLOUT_REGISTRY[(ROLLOUT_NAME, "async")] = ADAPTER


def _register_replica(module: ModuleType) -> None:
    from exit_verl.verl.cpu.rollout_names import ROLLOUT_NAME

    def load():  # noqa: ANN202 - verl's loader protocol
        from exit_verl.verl.cpu.rollout import TransformersReplica

        return TransformersReplica

    module.RolloutReplicaRegistry.register(ROLLOUT_NAME, load)


def register() -> None:
    """Makes the cpu platform, its engines and the transformers rollout known to verl."""
    global _registered
    if _registered:
        return
    from verl.plugin.platform.platform_manager import PlatformRegistry

    from exit_verl.verl.cpu.platform import PLATFORM_NAME, CPUPlatform

    PlatformRegistry.register(platform=PLATFORM_NAME)(CPUPlatform)
    # With several threads per process on shared cores, OpenMP's default spin-waiting makes
    # torch many times slower whenever a core is taken; Ray workers inherit this from the
    # driver (the driver itself computes nothing).
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    when_imported("verl.utils.distributed", _gloo_process_group)
    when_imported("verl.single_controller.ray.base", _count_cpu_resource)
    when_imported("verl.workers.engine.fsdp.transformer_impl", _unpinned_offload)
    when_imported("verl.workers.engine", _register_engines)
    when_imported("verl.workers.rollout.base", _register_rollout_adapter)
    when_imported("verl.workers.rollout.replica", _register_replica)
    _registered = True
