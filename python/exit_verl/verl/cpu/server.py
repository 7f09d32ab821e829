"""The rollout server of the `transformers` backend (a Ray actor per replica): answers the
agent loop's token-in/token-out `generate` calls (`decoding.generate_batch`). Requests that
arrive together are batched (same sampling settings) and generated in a worker thread,
so the actor keeps accepting requests; the trainer pushes weights (or a LoRA adapter) into it.

verl's async modes pause generation around the update (`abort_all_requests`, later
`resume_generation`), as vLLM does: queued requests are returned as aborted (verl's client
re-sends them), requests arriving while paused wait for the resume (or, with
`reject_request`, are returned as aborted at once), and no new batch starts while paused. A
batch already generating finishes (generation is not interrupted mid-batch).

This module imports neither torch nor verl at import time: every process that receives a handle
of the server actor imports the module that defines its class, and verl's request router should
stay a small process (see `router.py`).
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from exit_verl.verl.cpu.rollout_names import ROLLOUT_NAME

if TYPE_CHECKING:
    import torch
    from verl.workers.config import HFModelConfig, RolloutConfig
    from verl.workers.rollout.replica import TokenOutput

    from exit_verl.verl.cpu.generation import Completion, SamplingSpec

logger = logging.getLogger(__name__)
logger.setLevel(os.getenv("VERL_LOGGING_LEVEL", "INFO"))

# How long the server waits for more requests before it starts a batch: the agent loop sends
# a step's requests one by one, tens of milliseconds apart (64 validation prompts take over a
# second) and sometimes with a longer pause after the first, and a batch split in two decodes
# twice (e.g. 46 + 18 requests: 74.8 s + 46.0 s; 1 + 63 with a 0.2 s wait).
GATHER_SECONDS = 0.5
MAX_GATHER_SECONDS = 5.0


def server_name(replica_rank: int, node_rank: int = 0, suffix: str = "") -> str:
    return f"{ROLLOUT_NAME}_server_{replica_rank}_{node_rank}{suffix}"


def _as_dataclass_config(model_config: Any) -> HFModelConfig:
    from verl.utils.config import omega_conf_to_dataclass
    from verl.workers.config import HFModelConfig

    if isinstance(model_config, HFModelConfig):
        return model_config

    return omega_conf_to_dataclass(model_config, dataclass_type=HFModelConfig)


def _eos_ids(model_config: HFModelConfig) -> list[int]:
    ids: set[int] = set()
    generation = getattr(model_config, "generation_config", None)
    eos = getattr(generation, "eos_token_id", None) if generation is not None else None
    if isinstance(eos, int):
        ids.add(eos)
    elif eos:
        ids.update(int(t) for t in eos)
    tokenizer_eos = getattr(model_config.tokenizer, "eos_token_id", None)
    if tokenizer_eos is not None:
        ids.add(int(tokenizer_eos))
    return sorted(ids)


@dataclass
class _Request:
    prompt_ids: list[int]
    spec: SamplingSpec
    future: asyncio.Future = field(repr=False)


class TransformersServer:
    """Rollout server of one replica (wrapped with `ray.remote` by `TransformersReplica`)."""

    def __init__(self, config: RolloutConfig, model_config: Any, replica_rank: int) -> None:
        self.config = config
        self.model_config = _as_dataclass_config(model_config)
        self.replica_rank = replica_rank
        self.global_steps: int | None = None
        self.model: torch.nn.Module | None = None
        self.base_model: torch.nn.Module | None = None
        self._merged = False  # a LoRA adapter is merged into the base weights
        self._queue: list[_Request] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._arrived: asyncio.Event | None = None
        self._resumed: asyncio.Event | None = None  # set while generation may run
        self._paused = False
        self._reject = False
        self._lock: asyncio.Lock | None = None
        self._serving: asyncio.Task | None = None
        self.stats = {"requests": 0, "batches": 0, "generated_tokens": 0, "weight_updates": 0}

    # ---- life cycle -------------------------------------------------------------------------

    async def launch(self) -> None:
        """Loads the model and starts the batching loop."""
        import torch
        from transformers import AutoModelForCausalLM
        from verl.utils.torch_dtypes import PrecisionType

        from exit_verl.verl.cpu.platform import torch_threads

        torch.set_num_threads(torch_threads())
        dtype = PrecisionType.to_dtype(self.config.dtype)
        path = self.model_config.local_path
        model = AutoModelForCausalLM.from_pretrained(
            path,
            dtype=dtype,
            attn_implementation="sdpa",
            trust_remote_code=self.model_config.trust_remote_code,
        )
        model.eval().requires_grad_(False)
        self.base_model = self.model = model
        tokenizer = self.model_config.tokenizer
        self.stop_token_ids = _eos_ids(self.model_config)
        pad = getattr(tokenizer, "pad_token_id", None)
        self.pad_token_id = int(pad if pad is not None else self.stop_token_ids[0])
        self.max_model_len = int(
            self.config.max_model_len or getattr(model.config, "max_position_embeddings", 0) or 0
        ) or (self.config.prompt_length + self.config.response_length)
        self._ensure_serving()
        logger.info("transformers rollout server %d: %s (%s)", self.replica_rank, path, dtype)

    def _ensure_serving(self) -> None:
        """Starts the batching loop on the running event loop (a Ray actor has one)."""
        loop = asyncio.get_running_loop()
        if self._loop is not loop or self._serving is None or self._serving.done():
            self._loop = loop
            self._arrived = asyncio.Event()
            self._resumed = asyncio.Event()
            if not self._paused:
                self._resumed.set()
            self._lock = asyncio.Lock()
            self._serving = loop.create_task(self._serve())
            if self._queue:
                self._arrived.set()

    async def wake_up(self, tags: list[str] | None = None) -> None:
        return None  # weights and caches stay in (CPU) memory

    async def sleep(self) -> None:
        return None

    async def clear_kv_cache(self) -> None:
        return None  # no cache survives a batch

    async def release_kv_cache(self) -> None:
        return None

    async def resume_kv_cache(self) -> None:
        return None

    async def abort_all_requests(self, reject_request: bool = False, **kwargs: Any) -> dict:
        """Pauses generation until `resume_generation`; queued requests return as aborted
        (verl's client sends them again)."""
        self._ensure_serving()
        self._paused, self._reject = True, bool(reject_request)
        self._resumed.clear()
        aborted = [r for r in self._queue if not r.future.done()]
        self._queue.clear()
        for request in aborted:
            request.future.set_result(self._aborted())
        return {"aborted_count": len(aborted), "request_ids": []}

    async def resume_generation(self) -> None:
        self._ensure_serving()
        self._paused = self._reject = False
        self._resumed.set()

    def _aborted(self) -> TokenOutput:
        from verl.workers.rollout.replica import TokenOutput

        return TokenOutput(token_ids=[], stop_reason="aborted", extra_fields=self._extra())

    async def wait_for_requests_to_drain(self) -> None:
        self._ensure_serving()
        while self._queue and not self._paused:
            await asyncio.sleep(GATHER_SECONDS)
        async with self._lock:
            return None

    async def start_profile(self, **kwargs: Any) -> None:
        return None

    async def stop_profile(self) -> None:
        return None

    async def set_global_steps(self, global_steps: int) -> None:
        self.global_steps = global_steps

    async def get_stats(self) -> dict:
        return {**self.stats, "global_steps": self.global_steps}

    # ---- generation -------------------------------------------------------------------------

    def _extra(self) -> dict:
        return {"global_steps": self.global_steps}

    async def generate(
        self,
        prompt_ids: list[int],
        sampling_params: dict[str, Any],
        request_id: str,
        image_data: Any = None,
        video_data: Any = None,
        audio_data: Any = None,
        mm_processor_kwargs: Any = None,
        **kwargs: Any,
    ) -> TokenOutput:
        from verl.workers.rollout.replica import TokenOutput

        from exit_verl.verl.cpu.generation import resolve_sampling

        if image_data is not None or video_data is not None or audio_data is not None:
            raise NotImplementedError("the transformers rollout server is text-only")
        prompt = [int(t) for t in prompt_ids]
        spec = resolve_sampling(
            sampling_params,
            len(prompt),
            prompt_length=self.config.prompt_length,
            response_length=self.config.response_length,
            max_model_len=self.max_model_len,
            stop_token_ids=self.stop_token_ids,
            ignore_eos=bool(self.config.ignore_eos),
        )
        self._ensure_serving()
        if self._paused and self._reject:
            return self._aborted()
        future = asyncio.get_running_loop().create_future()
        self._queue.append(_Request(prompt, spec, future))
        self.stats["requests"] += 1
        self._arrived.set()
        completion: Completion | TokenOutput = await future
        if isinstance(completion, TokenOutput):
            return completion
        return TokenOutput(
            token_ids=completion.token_ids,
            log_probs=completion.log_probs,
            stop_reason="completed",
            extra_fields=self._extra(),
        )

    async def _gather(self) -> list[_Request]:
        """Waits until requests stop arriving (or a batch is full), then takes a batch."""
        loop = asyncio.get_running_loop()
        start = loop.time()
        limit = max(1, int(self.config.max_num_seqs))
        while len(self._queue) < limit and loop.time() - start < MAX_GATHER_SECONDS:
            seen = len(self._queue)
            await asyncio.sleep(GATHER_SECONDS)
            if len(self._queue) == seen:
                break
        batch, self._queue = self._queue[:limit], self._queue[limit:]
        if not self._queue:
            self._arrived.clear()
        return batch

    async def _serve(self) -> None:
        from exit_verl.verl.cpu.decoding import generate_batch

        while True:
            await self._arrived.wait()
            await self._resumed.wait()
            batch = await self._gather()
            groups: dict[SamplingSpec, list[_Request]] = defaultdict(list)
            for request in batch:
                groups[request.spec].append(request)
            for spec, requests in groups.items():
                async with self._lock:
                    started = time.monotonic()
                    try:
                        completions = await asyncio.to_thread(
                            generate_batch,
                            self.model,
                            [r.prompt_ids for r in requests],
                            spec,
                            self.pad_token_id,
                        )
                    except Exception as error:  # surfaced to each caller, the loop keeps serving
                        logger.exception("generation failed")
                        for request in requests:
                            if not request.future.done():
                                request.future.set_exception(error)
                        continue
                self.stats["batches"] += 1
                tokens = sum(len(c.token_ids) for c in completions)
                logger.info(
                    "replica %d: %d requests, %d new tokens in %.1fs",
                    self.replica_rank,
                    len(requests),
                    tokens,
                    time.monotonic() - started,
                )
                for request, completion in zip(requests, completions, strict=True):
                    self.stats["generated_tokens"] += len(completion.token_ids)
                    if not request.future.done():
                        request.future.set_result(completion)

    # ---- weights ----------------------------------------------------------------------------

    async def update_weights(
        self,
        named_tensors: list[tuple[str, torch.Tensor]],
        peft_config: dict | None = None,
        base_sync_done: bool = True,
    ) -> int:
        """Loads one bucket of the actor's tensors; returns how many were loaded.

        With a `peft_config` and `base_sync_done`, the tensors are the LoRA adapter (peft
        state-dict names): the server wraps its base model with that adapter once and loads the
        adapter weights into it. Otherwise they are base-model weights under HF names.
        """
        self._ensure_serving()
        async with self._lock:
            if peft_config is not None and base_sync_done:
                self._load_adapter(named_tensors, peft_config)
            else:
                self._load_base(named_tensors)
        self.stats["weight_updates"] += 1
        return len(named_tensors)

    def _load_base(self, named_tensors: list[tuple[str, torch.Tensor]]) -> None:
        import torch

        params = dict(self.base_model.named_parameters(remove_duplicate=False))
        params.update(dict(self.base_model.named_buffers(remove_duplicate=False)))
        # A LoRA actor's base sync names wrapped layers `<layer>.base_layer.weight`, and so
        # does the server's own model once an adapter wraps it: both sides drop the wrapper.
        params = {
            name.replace(".base_layer.", "."): tensor
            for name, tensor in params.items()
            if "lora_" not in name
        }
        keyed = [(name.replace(".base_layer.", "."), tensor) for name, tensor in named_tensors]
        unknown = [key for key, _ in keyed if key not in params]
        if unknown:  # checked before anything is copied: a bad bucket changes nothing
            raise KeyError(f"rollout model has no parameters {unknown[:5]}")
        for key, tensor in keyed:
            if tensor.numel() != params[key].numel():
                raise ValueError(f"{key}: {tuple(tensor.shape)} != {tuple(params[key].shape)}")
        merged = self._merged
        if merged:  # the base weights hold the adapter: take it out, load, put it back
            self._unmerge()
        with torch.no_grad():
            for key, tensor in keyed:
                params[key].copy_(tensor.to(params[key].dtype).view_as(params[key]))
        if merged:
            self._merge()

    def _load_adapter(self, named_tensors: list[tuple[str, torch.Tensor]], peft_config: dict):
        from dataclasses import fields

        from peft import LoraConfig, PeftModel, get_peft_model, set_peft_model_state_dict
        from peft.utils.save_and_load import get_peft_model_state_dict

        wrapped_now = not isinstance(self.model, PeftModel)
        if wrapped_now:
            init_fields = {f.name for f in fields(LoraConfig) if f.init}
            config = LoraConfig(**{k: v for k, v in peft_config.items() if k in init_fields})
            config.inference_mode = True
            self.model = get_peft_model(self.base_model, config).eval()
        expected = set(get_peft_model_state_dict(self.model))
        unknown = [name for name, _ in named_tensors if name not in expected]
        if unknown:  # leave the model as it was: unwrap an adapter added by this call
            if wrapped_now:
                self.base_model = self.model.unload()
                self.model = self.base_model
            raise KeyError(f"adapter tensors the rollout model does not have: {unknown[:5]}")
        if self._merged:
            self._unmerge()
        set_peft_model_state_dict(self.model, dict(named_tensors))
        self._merge()

    # Generation runs the adapter merged into the base weights: no adapter products per token
    # (about 15% of a round). Each update takes the old adapter out first (W + BA - BA, exact
    # up to fp32 rounding).
    def _merge(self) -> None:
        self.model.merge_adapter()
        self._merged = True

    def _unmerge(self) -> None:
        self.model.unmerge_adapter()
        self._merged = False
