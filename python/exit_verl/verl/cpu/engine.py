"""verl's FSDP engines, registered for the cpu device.

They run unchanged on CPU (gloo, fp32, sdpa come from the config); the subclasses only give
the trainer process its torch threads, which Ray starts at one.
"""

from __future__ import annotations

from typing import Any

import torch

from exit_verl.verl.cpu.platform import torch_threads


def register_engines(registry: Any) -> None:
    """Registers the language and value model FSDP engines for `device="cpu"`."""
    from verl.workers.engine.fsdp.transformer_impl import (
        FSDPEngineWithLMHead,
        FSDPEngineWithValueHead,
    )

    class CPUFSDPEngineWithLMHead(FSDPEngineWithLMHead):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            torch.set_num_threads(torch_threads())
            super().__init__(*args, **kwargs)

    class CPUFSDPEngineWithValueHead(FSDPEngineWithValueHead):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            torch.set_num_threads(torch_threads())
            super().__init__(*args, **kwargs)

    backends = ["fsdp", "fsdp2"]
    registry.register(model_type="language_model", backend=backends, device="cpu")(
        CPUFSDPEngineWithLMHead
    )
    registry.register(model_type="value_model", backend=backends, device="cpu")(
        CPUFSDPEngineWithValueHead
    )
