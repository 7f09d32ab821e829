"""verl's actor/rollout/reference worker with the reference reset as registered methods.

verl has no call that changes its reference policy. Its worker methods are declared with
`@register(dispatch_mode=...)` and bound onto the worker group from the worker class, and the
trainer chooses that class in `_init_resource_pool_mgr` (`role_worker_mapping`), the place
verl's own separate-async trainer swaps in its `DetachActorWorker`. `ExItTrainer` swaps in
this subclass the same way when the run resets its reference; every inherited method is
verl's, unchanged. Its methods run on every rank (`Dispatch.ONE_TO_ALL`):

- `exit_reset_reference(alpha)`: ref <- alpha * actor + (1 - alpha) * ref. A separate
  reference model (`self.ref`) is mixed from the actor; with LoRA (no `self.ref`: verl's
  reference is the actor with its adapter off) alpha of the adapter moves into the base
  weights, and the next weight sync ships the base weights to the rollout again.
- `exit_save_reference(folder)` / `exit_load_reference(folder)`: a separate reference's
  shards, one safetensors file per rank, in the checkpoint folder (verl does not checkpoint
  its reference; LoRA's merged base weights are part of the actor's own checkpoint).
- `exit_resync_base()`: the next weight sync ships the base weights too (after a resume whose
  actor checkpoint carries merged base weights the rollout server has not seen).
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from verl.single_controller.base.decorator import Dispatch, register
from verl.workers.engine_workers import ActorRolloutRefWorker

from exit_verl.verl.reference_weights import (
    load_local_state,
    local_state,
    merge_lora_into_base,
    mix_parameters,
)


def shard_file(folder: str | os.PathLike[str], rank: int, world: int) -> Path:
    return Path(folder) / f"reference_rank_{rank}_of_{world}.safetensors"


class ExItActorRolloutRefWorker(ActorRolloutRefWorker):
    """verl's `ActorRolloutRefWorker` plus the reference reset (module docstring)."""

    @register(dispatch_mode=Dispatch.ONE_TO_ALL)
    def exit_reset_reference(self, alpha: float) -> dict:
        actor = self.actor.engine.module
        if self.ref is not None:
            tensors = mix_parameters(self.ref.engine.module, actor, alpha)
            return {"layout": "separate", "tensors": tensors}
        adapters = merge_lora_into_base(actor, alpha)
        if self.rollout is not None and not self.peft_merge:
            self.base_sync_done = False  # the rollout's base weights are now stale
        return {"layout": "lora", "tensors": adapters}

    @register(dispatch_mode=Dispatch.ONE_TO_ALL)
    def exit_save_reference(self, folder: str) -> str | None:
        if self.ref is None:
            return None
        from safetensors.torch import save_file

        rank, world = torch.distributed.get_rank(), torch.distributed.get_world_size()
        path = shard_file(folder, rank, world)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        save_file(local_state(self.ref.engine.module), str(tmp))
        os.replace(tmp, path)
        return str(path)

    @register(dispatch_mode=Dispatch.ONE_TO_ALL)
    def exit_load_reference(self, folder: str) -> int:
        if self.ref is None:
            raise RuntimeError("this run has no separate reference model to restore")
        from safetensors.torch import load_file

        rank, world = torch.distributed.get_rank(), torch.distributed.get_world_size()
        path = shard_file(folder, rank, world)
        if not path.is_file():
            raise FileNotFoundError(
                f"{path} is missing: the reference was saved with another number of workers"
            )
        return load_local_state(self.ref.engine.module, load_file(str(path)))

    @register(dispatch_mode=Dispatch.ONE_TO_ALL)
    def exit_resync_base(self) -> None:
        if self.rollout is not None and not self.peft_merge:
            self.base_sync_done = False
