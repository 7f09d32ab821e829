"""Reference-policy reset on the weights themselves: ref <- alpha * actor + (1 - alpha) * ref.

Two layouts, as verl builds them:

- a separate reference model (full fine-tuning): `mix_parameters` updates every parameter of
  the reference module from the actor module of the same architecture;
- LoRA, where verl's reference is the actor's base weights (the adapter switched off):
  `merge_lora_into_base` adds alpha times each adapter's update to its base weight and keeps
  (1 - alpha) of it in the adapter (lora_B scaled), so the actor's function is unchanged while
  its base weights, the reference, move by alpha towards the actor. With alpha = 1 the adapter
  is folded into the base entirely and lora_B starts again from zero.

Both work on FSDP2-sharded modules in place, rank by rank: parameters are DTensors sharded
on their first dimension, so each rank updates its local shard (the reference and the actor
are sharded alike; lora_B shares its base weight's first dimension, and the small lora_A is
gathered whole). Plain (unsharded) modules work the same way. `local_state` /
`load_local_state` save and restore a rank's reference shards for checkpoints.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import nn

try:
    from torch.distributed.tensor import DTensor
except ImportError:  # torch without DTensor: nothing can be sharded
    DTensor = ()  # type: ignore[assignment,misc]


def local(t: torch.Tensor) -> torch.Tensor:
    """This rank's shard of `t` (the same storage), or `t` itself."""
    return t.to_local() if isinstance(t, DTensor) else t


def full(t: torch.Tensor) -> torch.Tensor:
    """The whole of `t` (a collective for a DTensor: every rank must call it, in order)."""
    return t.full_tensor() if isinstance(t, DTensor) else t


def _resharded(module: nn.Module) -> nn.Module:
    # An FSDP2 module left unsharded holds gathered copies; its sharded parameters are the
    # ones that persist.
    reshard = getattr(module, "reshard", None)
    if callable(reshard):
        reshard()
    return module


def mix_parameters(reference: nn.Module, actor: nn.Module, alpha: float) -> int:
    """ref <- alpha * actor + (1 - alpha) * ref for every parameter; how many tensors.

    ValueError (and nothing changed) when the two modules' parameters differ in names or in
    local shard shapes."""
    _check_alpha(alpha)
    ref = dict(_resharded(reference).named_parameters())
    act = dict(_resharded(actor).named_parameters())
    if ref.keys() != act.keys():
        only_ref = sorted(ref.keys() - act.keys())[:3]
        only_actor = sorted(act.keys() - ref.keys())[:3]
        raise ValueError(
            f"reference and actor parameters differ: only in the reference {only_ref}, "
            f"only in the actor {only_actor}"
        )
    pairs = [(name, local(ref[name]), local(act[name])) for name in ref]
    for name, r, a in pairs:
        if r.shape != a.shape:
            raise ValueError(f"{name}: reference shard {tuple(r.shape)} != actor {tuple(a.shape)}")
    with torch.no_grad():
        for _, r, a in pairs:
            source = a.to(device=r.device, dtype=r.dtype)
            if alpha == 1.0:
                r.copy_(source)
            else:
                r.mul_(1.0 - alpha).add_(source, alpha=alpha)
    return len(pairs)


def lora_layers(model: nn.Module) -> Iterator[tuple[str, nn.Module]]:
    """The peft LoRA layers of `model`."""
    from peft.tuners.lora import LoraLayer

    for name, module in model.named_modules():
        if isinstance(module, LoraLayer):
            yield name, module


def merge_lora_into_base(model: nn.Module, alpha: float) -> int:
    """Moves alpha of every active LoRA adapter's update into its base weight (module
    docstring); how many adapters. ValueError (nothing changed) for adapters this cannot
    merge exactly: DoRA, embedding adapters, fan-in-fan-out (Conv1D) layers."""
    _check_alpha(alpha)
    layers = list(lora_layers(_resharded(model)))
    if not layers:
        raise ValueError("the actor has no LoRA layers to merge")
    work = []
    for name, layer in layers:
        base = layer.get_base_layer()
        if getattr(layer, "fan_in_fan_out", False) or not isinstance(base, nn.Linear):
            raise ValueError(f"{name}: only LoRA on nn.Linear layers can be merged")
        for adapter in layer.active_adapters:
            if adapter not in layer.lora_A or layer.use_dora.get(adapter, False):
                raise ValueError(f"{name}: adapter {adapter!r} is not a plain LoRA adapter")
            b = local(layer.lora_B[adapter].weight)
            w = local(base.weight)
            if b.shape[0] != w.shape[0]:
                raise ValueError(f"{name}: lora_B and the base weight are sharded differently")
            work.append((layer.lora_A[adapter].weight, b, w, float(layer.scaling[adapter])))
    with torch.no_grad():
        for a, b, w, scaling in work:
            delta = b.to(torch.float32) @ full(a).to(device=b.device, dtype=torch.float32)
            w.add_((alpha * scaling * delta).to(device=w.device, dtype=w.dtype))
            b.mul_(1.0 - alpha)
    return len(work)


def local_state(module: nn.Module) -> dict[str, torch.Tensor]:
    """This rank's parameter shards as contiguous CPU tensors (for a checkpoint file)."""
    return {
        name: local(p).detach().to("cpu").contiguous()
        for name, p in _resharded(module).named_parameters()
    }


def load_local_state(module: nn.Module, state: dict[str, torch.Tensor]) -> int:
    """Copies a rank's saved shards back; ValueError (nothing changed) unless names and shapes
    match exactly."""
    params = {name: local(p) for name, p in _resharded(module).named_parameters()}
    if params.keys() != state.keys():
        raise ValueError("saved reference shards do not match the reference model's parameters")
    for name, p in params.items():
        if p.shape != state[name].shape:
            raise ValueError(f"{name}: saved shard {tuple(state[name].shape)} != {tuple(p.shape)}")
    with torch.no_grad():
        for name, p in params.items():
            p.copy_(state[name].to(device=p.device, dtype=p.dtype))
    return len(params)


def _check_alpha(alpha: float) -> None:
    if not 0.0 < alpha <= 1.0:
        raise ValueError(f"alpha must be in (0, 1], got {alpha}")
