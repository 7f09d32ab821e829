"""The `transformers` rollout backend in verl's rollout server/replica interface, in place of
vLLM or SGLang; the server itself is `server.TransformersServer`.

- `TransformersServerAdapter` is the rollout object inside verl's trainer worker
  (`ActorRolloutRefWorker.rollout`). verl's weight sync (`CheckpointEngineManager.update_weights`
  -> worker `update_weights` -> `rollout.update_weights`) hands it the actor's tensors, which it
  ships to the server in buckets: full weights, or only the LoRA adapter when the actor trains
  one.
- `TransformersReplica` launches the server next to the replica's trainer workers.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterable
from typing import Any

import ray
import torch
from verl.workers.config import HFModelConfig, RolloutConfig
from verl.workers.rollout.base import BaseRollout
from verl.workers.rollout.replica import RolloutReplica
from verl.workers.rollout.utils import ensure_async_iterator

from exit_verl.verl.cpu.rollout_names import ROLLOUT_NAME
from exit_verl.verl.cpu.server import TransformersServer, server_name

logger = logging.getLogger(__name__)
logger.setLevel(os.getenv("VERL_LOGGING_LEVEL", "INFO"))

# Upper bound of one weight-transfer message; verl's own default bucket is 2 GB.
MAX_BUCKET_BYTES = 256 << 20


class TransformersServerAdapter(BaseRollout):
    """verl's rollout object inside the trainer worker: forwards weights to the server."""

    def __init__(
        self,
        config: RolloutConfig,
        model_config: HFModelConfig,
        device_mesh: Any = None,
        replica_rank: int = -1,
        **kwargs: Any,
    ) -> None:
        super().__init__(config, model_config, device_mesh)
        rank = int(os.environ.get("RANK", "0"))
        world = (
            self.config.tensor_model_parallel_size
            * self.config.data_parallel_size
            * self.config.pipeline_model_parallel_size
        )
        self.replica_rank = rank // world if replica_rank == -1 else replica_rank
        self.rollout_rank = rank % world
        self.is_leader_rank = self.rollout_rank == 0
        self.sleep_level = 1
        self._server: ray.actor.ActorHandle | None = None

    def _server_handle(self) -> ray.actor.ActorHandle | None:
        # Looked up lazily: the server starts after the trainer workers.
        if not self.is_leader_rank:
            return None
        if self._server is None:
            self._server = ray.get_actor(server_name(self.replica_rank))
        return self._server

    async def resume(self, tags: list[str]) -> None:
        server = self._server_handle()
        if server is not None:
            await server.wake_up.remote(tags=tags)

    async def release(self) -> None:
        server = self._server_handle()
        if server is not None:
            await server.sleep.remote()

    async def update_weights(
        self,
        weights: Iterable[tuple[str, torch.Tensor]],
        wire_format: str = "named_tensors",
        global_steps: int | None = None,
        peft_config: dict | None = None,
        base_sync_done: bool = True,
        **kwargs: Any,
    ) -> None:
        if wire_format != "named_tensors":
            raise NotImplementedError(
                f"the transformers rollout takes full tensors, not wire_format={wire_format!r}"
            )
        server = self._server_handle()
        bucket_bytes = min(
            MAX_BUCKET_BYTES,
            int(self.config.checkpoint_engine.update_weights_bucket_megabytes) << 20,
        )
        start = time.time()
        bucket: list[tuple[str, torch.Tensor]] = []
        size = sent = 0
        # Every rank iterates: producing a full tensor from a sharded one is a collective.
        async for name, tensor in ensure_async_iterator(weights):
            if server is None:
                continue
            tensor = tensor.detach().to("cpu").contiguous()
            bucket.append((name, tensor))
            size += tensor.numel() * tensor.element_size()
            if size >= bucket_bytes:
                sent += await server.update_weights.remote(bucket, peft_config, base_sync_done)
                bucket, size = [], 0
        if server is None:
            return
        if bucket:
            sent += await server.update_weights.remote(bucket, peft_config, base_sync_done)
        if global_steps is not None:
            await server.set_global_steps.remote(global_steps)
        logger.info(
            "replica %d: %d tensors synced in %.2fs", self.replica_rank, sent, time.time() - start
        )


class TransformersReplica(RolloutReplica):
    """One rollout replica: a `TransformersServer` on the node of its trainer workers."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.server_class = ray.remote(TransformersServer)

    async def launch_servers(self) -> None:
        if self.workers:
            node_id = await self.workers[0].__ray_call__.remote(
                lambda self: ray.get_runtime_context().get_node_id()
            )
        else:
            node_id = ray.get_runtime_context().get_node_id()
        server = self.server_class.options(
            name=server_name(self.replica_rank, 0, self.name_suffix),
            max_concurrency=self.max_concurrency,
            num_cpus=0,
            scheduling_strategy=ray.util.scheduling_strategies.NodeAffinitySchedulingStrategy(
                node_id=node_id, soft=False
            ),
        ).remote(config=self.config, model_config=self.model_config, replica_rank=self.replica_rank)
        await server.launch.remote()
        self.servers = [server]
        self._server_handle = server
        self._server_address = f"{ROLLOUT_NAME}-replica-{self.replica_rank}{self.name_suffix}"

    def rollout_worker_use_gpu(self) -> bool:
        return False
