"""The `cpu` platform for verl's platform manager (`verl.plugin.platform`).

verl asks its platform for the torch device, the device module it calls instead of
`torch.cuda`, the collective backend, and the Ray resource its workers reserve. On a CPU-only
machine these are `torch.device("cpu")`, a small stand-in for `torch.cuda` (memory figures are
the process's resident memory), gloo, and a custom Ray resource (`RAY_RESOURCE`) that the CPU
path declares when Ray starts, so Ray never asks for GPUs.
"""

from __future__ import annotations

import os
import resource
from contextlib import contextmanager
from types import SimpleNamespace
from typing import Any

import psutil
import torch
from verl.plugin.platform.platform_base import PlatformBase

PLATFORM_NAME = "cpu"
# Ray resource a training worker reserves, one unit per worker (as a GPU would be on CUDA).
RAY_RESOURCE = "verl_cpu"


def _rss() -> int:
    return psutil.Process().memory_info().rss


def _peak_rss() -> int:
    # ru_maxrss is in KiB on Linux.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _mem_get_info(device: Any = None) -> tuple[int, int]:
    memory = psutil.virtual_memory()
    return memory.available, memory.total


def _device_module() -> SimpleNamespace:
    """What verl calls through `get_torch_device()`: `torch.cpu` plus what it lacks.

    Streams, events and `synchronize` come from `torch.cpu`; caches are no-ops (CPU memory is
    returned by the allocator directly); memory figures report this process's resident memory.
    """
    cpu = torch.cpu
    return SimpleNamespace(
        is_available=lambda: True,
        device_count=lambda: 1,
        current_device=lambda: 0,
        set_device=lambda device: None,
        synchronize=cpu.synchronize,
        current_stream=cpu.current_stream,
        stream=cpu.stream,
        Stream=cpu.Stream,
        Event=cpu.Event,
        empty_cache=lambda: None,
        ipc_collect=lambda: None,
        set_per_process_memory_fraction=lambda fraction, device=None: None,
        reset_peak_memory_stats=lambda device=None: None,
        memory_allocated=lambda device=None: _rss(),
        memory_reserved=lambda device=None: _rss(),
        max_memory_allocated=lambda device=None: _peak_rss(),
        max_memory_reserved=lambda device=None: _peak_rss(),
        mem_get_info=_mem_get_info,
        get_device_name=lambda device=None: "cpu",
        get_rng_state=lambda device=None: torch.get_rng_state(),
        set_rng_state=lambda state, device=None: torch.set_rng_state(state),
        manual_seed=torch.manual_seed,
        manual_seed_all=torch.manual_seed,
    )


class CPUPlatform(PlatformBase):
    """verl platform for machines without an accelerator."""

    _module = _device_module()

    @property
    def device_name(self) -> str:
        return "cpu"

    @property
    def vendor_name(self) -> str:
        return "cpu"

    @property
    def device_module(self) -> Any:
        return self._module

    def is_available(self) -> bool:
        return True

    def is_platform_available(self, use_smi_check: bool = False) -> bool:
        # Never auto-detected: the CPU path is chosen explicitly with VERL_PLATFORM=cpu.
        return False

    def current_device(self) -> torch.device:  # type: ignore[override]
        # verl passes this to `.to(...)` and `device=`; an integer there would mean cuda:<i>.
        return torch.device("cpu")

    def device_count(self) -> int:
        return 1

    def set_device(self, device_index: int) -> None:
        return None

    def synchronize(self, device_index: int | None = None) -> None:
        return None

    def manual_seed(self, seed: int) -> None:
        torch.manual_seed(seed)

    def manual_seed_all(self, seed: int) -> None:
        torch.manual_seed(seed)

    def set_allocator_settings(self, settings: str) -> None:
        return None

    def empty_cache(self) -> None:
        return None

    def get_device_capability(self, device_index: int = 0) -> tuple[int | None, int | None]:
        return None, None

    def communication_backend_name(self) -> str:
        return "gloo"

    def visible_devices_envvar(self) -> str:
        # verl copies this variable between workers; nothing reads it on CPU.
        return "VERL_CPU_VISIBLE_DEVICES"

    @contextmanager
    def nvtx_range(self, msg: str):
        yield

    def profiler_start(self) -> None:
        return None

    def profiler_stop(self) -> None:
        return None

    def ray_resource_name(self) -> str:
        return RAY_RESOURCE

    def ray_noset_envvars(self) -> list[str]:
        return []

    def is_ipc_supported(self) -> bool:
        return False

    def cudart(self) -> Any:
        return None


def torch_threads() -> int:
    """Intra-op threads for the processes that compute (trainer worker, rollout server).

    Ray starts its workers with OMP_NUM_THREADS=1; on the CPU path the heavy phases (generate,
    update) run one after another, so each may use every core. `EXIT_VERL_CPU_THREADS` overrides.
    """
    value = os.environ.get("EXIT_VERL_CPU_THREADS")
    if value:
        threads = int(value)
        if threads < 1:
            raise ValueError(f"EXIT_VERL_CPU_THREADS must be >= 1, got {value!r}")
        return threads
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
