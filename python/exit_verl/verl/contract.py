"""Every verl (and TransferQueue) symbol exit_verl touches, and the verl releases it is tested with.

ExIt plugs into verl by subclassing, overriding, calling and registering; several of those
symbols are private (`_fetch_one_gen_batch`, `ReplayBuffer._clear_groups`, ...), so a verl
release may rename or re-sign them without notice. A renamed override would not fail: verl
would simply stop calling it (an exit run would train as plain GRPO). This table is the one
list of what the package relies on; `broken(group)` checks it against the installed verl:

- `override` / `swap`: verl calls the method with these parameters, so its parameter names
  (after `self`) must equal `params` exactly, in order.
- `call`: the package calls it with these keyword names: each must be a parameter, and every
  parameter verl requires must be among them.
- `attribute`: an instance attribute verl's class sets (`self.<name> =` in its source) or
  reads, named in `params`.
- `exists`: a class, module, registry or constant that must be importable.

`tests/test_verl_contract.py` checks every entry against the installed verl and that every
verl import in the package is listed. At run time `ExItTrainer` refuses to start when a
"trainer" entry is broken, and `version_warning()` names the tested range when the installed
verl is outside it.
"""

from __future__ import annotations

import importlib
import inspect
import logging
from dataclasses import dataclass

logger = logging.getLogger("exit_verl")

# The verl releases this package is tested with (`make test` runs the whole suite on them).
TESTED_VERL = ("0.9.1",)
TESTED_RANGE = "==0.9.1"
USES = ("override", "swap", "call", "attribute", "exists")
# Which part of the package needs an entry: the trainer mode, the tool-use agent loop (run in
# verl's agent-loop workers, any trainer mode), or the CPU path.
GROUPS = ("trainer", "agent_loop", "cpu")


@dataclass(frozen=True)
class Touch:
    """One verl symbol: `target` is "module:qualname" ("module" alone for a module)."""

    target: str
    use: str
    params: tuple[str, ...] = ()
    group: str = "trainer"

    def __post_init__(self) -> None:
        if self.use not in USES:
            raise ValueError(f"{self.target}: use must be one of {USES}, got {self.use!r}")
        if self.group not in GROUPS:
            raise ValueError(f"{self.target}: group must be one of {GROUPS}")

    @property
    def private(self) -> bool:
        return any(part.startswith("_") and not part.startswith("__") for part in self.names())

    def names(self) -> list[str]:
        module, _, qual = self.target.partition(":")
        return [*module.split("."), *(qual.split(".") if qual else [])]


T = "verl.trainer.ppo.v1.trainer_base:PPOTrainer"
RB = "verl.trainer.ppo.v1.replay_buffer:ReplayBuffer"
RRW = "verl.workers.engine_workers:ActorRolloutRefWorker"
AL = "verl.experimental.agent_loop.agent_loop"
TP = "verl.experimental.agent_loop.tool_parser:ToolParser"

CONTRACT: tuple[Touch, ...] = (
    # -- the trainer mode (exit_verl.verl.trainer, .trainer_modes) --------------------------
    Touch("verl.trainer.ppo.v1", "exists"),  # the module plugin.py waits for
    Touch("verl.trainer.ppo.v1.trainer_base:register_trainer", "call", ("name",)),
    Touch("verl.trainer.ppo.v1.trainer_sync:PPOTrainerSync", "exists"),
    Touch("verl.trainer.ppo.v1.trainer_colocate_async:PPOTrainerColocateAsync", "exists"),
    Touch(f"{T}.__init__", "override", ("config",)),
    # Instance attributes verl's trainer sets and ExIt reads (trainer_mode: ExIt's property).
    Touch(T, "attribute", ("trainer_mode", "global_steps", "config", "timing_raw")),
    Touch(T, "attribute", ("actor_rollout_wg", "ref_in_actor", "role_worker_mapping")),
    Touch(T, "attribute", ("tokenizer", "processor", "train_dataset", "val_dataset")),
    Touch(T, "attribute", ("val_dataloader",)),
    Touch(f"{T}.step", "override", ("metrics", "timing_raw")),
    Touch(f"{T}._build_replay_buffer", "override"),
    Touch(f"{T}._init_dataloader", "override"),
    Touch(f"{T}._init_resource_pool_mgr", "override"),
    Touch(f"{T}._fetch_one_gen_batch", "override"),
    Touch(
        f"{T}._balance_batch",
        "override",
        ("batch", "metrics", "logging_prefix", "keep_minibatch"),
    ),
    Touch(f"{T}._compute_advantage", "override", ("batch", "metrics")),
    Touch(f"{T}._save_checkpoint", "override"),
    Touch(f"{T}._load_checkpoint", "override"),
    Touch(f"{T}.on_init_end", "override"),
    Touch(f"{T}._validate", "override"),
    Touch(f"{T}._maybe_log_val_generations", "override", ("inputs", "outputs", "scores")),
    Touch(
        f"{T}._dump_generations",
        "override",
        ("inputs", "outputs", "gts", "scores", "reward_extra_infos_dict", "dump_path"),
    ),
    Touch(
        f"{T}._val_metrics_update",
        "override",
        (
            "data_sources",
            "sample_uids",
            "reward_extra_infos_dict",
            "sample_turns",
            "expected_acc_counts",
        ),
    ),
    Touch("verl.trainer.ppo.utils:Role", "attribute", ("ActorRollout", "ActorRolloutRef")),
    # The replay buffers: every group verl removes goes through these.
    Touch(RB, "attribute", ("partitions", "trainer_mode")),
    Touch(f"{RB}._clear_groups", "override", ("partition_id", "uids")),
    Touch(
        f"{RB}._materialize_batch",
        "override",
        ("partition_id", "selected_prompt_uids", "partition_snapshot"),
    ),
    Touch(
        f"{RB}._evict_terminal_groups",
        "override",
        ("global_steps", "partition_id", "eviction_reasons"),
    ),
    Touch("verl.trainer.ppo.v1.replay_buffer:ReplayBufferAsync", "exists"),
    # Reference reset: a worker subclass with one registered method.
    Touch(RRW, "attribute", ("actor", "ref", "rollout", "base_sync_done", "peft_merge")),
    Touch("verl.workers.engine_workers:TrainingWorker", "attribute", ("engine",)),
    Touch("verl.single_controller.base.decorator:register", "call", ("dispatch_mode",)),
    Touch("verl.single_controller.base.decorator:Dispatch", "attribute", ("ONE_TO_ALL",)),
    Touch("verl.utils.debug:marked_timer", "call", ("name", "timing_raw")),
    # Rows, prompts and datasets.
    Touch("transfer_queue:kv_batch_get", "call", ("keys", "partition_id", "select_fields")),
    Touch("transfer_queue:kv_batch_put", "call", ("keys", "partition_id", "fields")),
    Touch("transfer_queue:KVBatchMeta", "exists"),
    Touch("verl.utils.tensordict_utils:get_tensordict", "call", ("tensor_dict",)),
    Touch("verl.utils.dataset.rl_dataset:collate_fn", "call", ("data_list",)),
    Touch(
        "verl.utils.dataset.rl_dataset:RLHFDataset",
        "attribute",
        ("dataframe", "image_key", "video_key", "audio_key"),
    ),
    Touch(
        "verl.utils.tokenizer.continuous_token_wiring:create_continuous_token_builder",
        "call",
        ("tokenizer", "hf_model_type", "chat_template_kwargs", "processor"),
    ),
    Touch("verl.utils.config:omega_conf_to_dataclass", "call", ("config", "dataclass_type")),
    # Checkpoints.
    # ExItCheckpointFiles uses only the retention bookkeeping: its own __init__ sets the one
    # attribute verl's two methods read, and never calls verl's (which wants a model).
    Touch(
        "verl.utils.checkpoint.checkpoint_manager:BaseCheckpointManager",
        "attribute",
        ("previous_saved_paths",),
    ),
    Touch("verl.utils.checkpoint.checkpoint_manager:BaseCheckpointManager.__init__", "exists"),
    Touch(
        "verl.utils.checkpoint.checkpoint_manager:BaseCheckpointManager.ensure_checkpoint_capacity",
        "call",
        ("max_ckpt_to_keep",),
    ),
    Touch(
        "verl.utils.checkpoint.checkpoint_manager:BaseCheckpointManager.register_checkpoint",
        "call",
        ("new_path", "max_ckpt_to_keep"),
    ),
    Touch(
        "verl.utils.checkpoint.checkpoint_manager:BaseCheckpointManager"
        ".remove_previous_save_local_path",
        "override",
        ("path",),
    ),
    Touch("verl.utils.hdfs_io:makedirs", "call", ("name", "exist_ok")),
    Touch("verl.utils.hdfs_io:copy", "call", ("src", "dst")),
    # Entry points.
    Touch("verl.trainer.main_ppo:main", "call", ("config",)),
    Touch("verl.trainer.config", "exists"),  # driver_check composes "ppo_trainer" from it
    # -- the tool-use agent loop (exit_verl.verl.tool_agent_loop) ----------------------------
    Touch(AL, "exists", group="agent_loop"),  # the module plugin.py waits for
    Touch(f"{AL}:register", "call", ("agent_name",), group="agent_loop"),
    Touch(f"{AL}:AgentLoopBase.run", "override", ("sampling_params", "kwargs"), group="agent_loop"),
    Touch(
        f"{AL}:AgentLoopBase",
        "attribute",
        ("rollout_config", "tokenizer", "server_manager"),
        group="agent_loop",
    ),
    Touch(
        f"{AL}:AgentLoopBase.ct_build_initial_tokens",
        "call",
        ("messages", "tools"),
        group="agent_loop",
    ),
    Touch(
        f"{AL}:AgentLoopBase.ct_merge_context_msg",
        "call",
        (
            "previous_messages",
            "updated_messages",
            "runtime_token_ids",
            "response_mask",
            "response_logprobs",
            "tools",
        ),
        group="agent_loop",
    ),
    Touch(
        f"{AL}:AgentLoopBase.ct_merge_assistant_token",
        "call",
        (
            "runtime_token_ids",
            "assistant_token_ids",
            "response_mask",
            "response_logprobs",
            "assistant_logprobs",
        ),
        group="agent_loop",
    ),
    Touch(
        f"{AL}:AgentLoopOutput",
        "call",
        (
            "prompt_ids",
            "response_ids",
            "response_mask",
            "response_logprobs",
            "reward_score",
            "num_turns",
            "metrics",
            "extra_fields",
        ),
        group="agent_loop",
    ),
    Touch(
        "verl.workers.rollout.llm_server:LLMServerClient.generate",
        "call",
        ("request_id", "prompt_ids", "sampling_params"),
        group="agent_loop",
    ),
    Touch(f"{TP}.get_tool_parser", "call", ("name", "tokenizer"), group="agent_loop"),
    Touch(f"{TP}.extract_tool_calls", "call", ("responses_ids", "tools"), group="agent_loop"),
    Touch(TP, "attribute", ("stop_token_ids",), group="agent_loop"),
    Touch("verl.tools.schemas:OpenAIFunctionToolSchema", "exists", group="agent_loop"),
    Touch("verl.utils.profiler:simple_timer", "call", ("name", "timing_raw"), group="agent_loop"),
    # -- the CPU path (exit_verl.verl.cpu) ---------------------------------------------------
    # CPUPlatform implements verl's platform interface (tests compare each signature).
    Touch(
        "verl.plugin.platform.platform_base:PlatformBase",
        "attribute",
        (
            "device_name",
            "vendor_name",
            "device_module",
            "is_available",
            "is_platform_available",
            "current_device",
            "device_count",
            "set_device",
            "synchronize",
            "manual_seed",
            "manual_seed_all",
            "set_allocator_settings",
            "empty_cache",
            "get_device_capability",
            "communication_backend_name",
            "visible_devices_envvar",
            "nvtx_range",
            "profiler_start",
            "profiler_stop",
            "ray_resource_name",
            "ray_noset_envvars",
            "is_ipc_supported",
            "cudart",
        ),
        group="cpu",
    ),
    Touch(
        "verl.plugin.platform.platform_manager:PlatformRegistry.register",
        "call",
        ("platform",),
        group="cpu",
    ),
    Touch("verl.plugin.platform:get_platform", "call", (), group="cpu"),
    Touch(
        "verl.utils.distributed:initialize_global_process_group_ray",
        "swap",
        ("timeout_second", "backend"),
        group="cpu",
    ),
    Touch(
        "verl.single_controller.ray.base:ResourcePoolManager._check_resource_available",
        "swap",
        group="cpu",
    ),
    Touch(
        "verl.single_controller.ray.base:ResourcePoolManager",
        "attribute",
        ("resource_pool_spec",),
        group="cpu",
    ),
    Touch(
        "verl.workers.engine.base:EngineRegistry.register",
        "call",
        ("model_type", "backend", "device"),
        group="cpu",
    ),
    Touch(
        "verl.workers.engine.fsdp.transformer_impl:CPUOffloadPolicy",
        "swap",
        ("pin_memory",),
        group="cpu",
    ),
    Touch("verl.workers.engine.fsdp.transformer_impl:FSDPEngineWithLMHead", "exists", group="cpu"),
    Touch(
        "verl.workers.engine.fsdp.transformer_impl:FSDPEngineWithValueHead", "exists", group="cpu"
    ),
    Touch("verl.workers.rollout.base:_ROLLOUT_REGISTRY", "exists", group="cpu"),
    Touch(
        "verl.workers.rollout.replica:RolloutReplicaRegistry.register",
        "call",
        ("name", "loader"),
        group="cpu",
    ),
    Touch(
        "verl.workers.rollout.base:BaseRollout.__init__",
        "call",
        ("config", "model_config", "device_mesh"),
        group="cpu",
    ),
    Touch("verl.workers.rollout.base:BaseRollout.resume", "override", ("tags",), group="cpu"),
    Touch("verl.workers.rollout.base:BaseRollout.release", "override", group="cpu"),
    Touch(
        "verl.workers.rollout.base:BaseRollout.update_weights",
        "call",
        ("weights", "wire_format"),
        group="cpu",
    ),
    Touch("verl.workers.rollout.replica:RolloutReplica.launch_servers", "override", group="cpu"),
    Touch(
        "verl.workers.rollout.replica:RolloutReplica.rollout_worker_use_gpu",
        "override",
        group="cpu",
    ),
    Touch(
        "verl.workers.rollout.replica:RolloutReplica",
        "attribute",
        ("workers", "servers", "_server_handle", "_server_address", "name_suffix"),
        group="cpu",
    ),
    Touch(
        "verl.workers.rollout.replica:TokenOutput",
        "call",
        ("token_ids", "log_probs", "stop_reason", "extra_fields"),
        group="cpu",
    ),
    Touch("verl.workers.rollout.utils:ensure_async_iterator", "call", ("iterable",), group="cpu"),
    Touch("verl.workers.config:HFModelConfig", "exists", group="cpu"),
    Touch("verl.workers.config:RolloutConfig", "exists", group="cpu"),
    Touch("verl.utils.torch_dtypes:PrecisionType.to_dtype", "call", ("precision",), group="cpu"),
    Touch(
        "verl.workers.rollout.router:RequestLoadBalancer",
        "attribute",
        ("acquire_server", "release_server", "add_servers", "remove_servers"),
        group="cpu",
    ),
)


def resolve(target: str) -> object:
    """The object named by "module:qualname"; ImportError / AttributeError when absent."""
    module_name, _, qual = target.partition(":")
    obj: object = importlib.import_module(module_name)
    for part in qual.split(".") if qual else []:
        obj = getattr(obj, part)
    return obj


def _parameters(obj: object) -> list[inspect.Parameter]:
    params = list(inspect.signature(obj).parameters.values())
    if params and params[0].name in ("self", "cls"):
        params = params[1:]
    return params


def problem(touch: Touch) -> str | None:
    """Why the installed verl does not satisfy `touch`, or None."""
    try:
        obj = resolve(touch.target)
    except (ImportError, AttributeError) as e:
        return f"{touch.target}: missing ({e})"
    if touch.use == "exists":
        return None
    if touch.use == "attribute":
        return _attribute_problem(touch, obj)
    try:
        params = _parameters(obj)
    except (TypeError, ValueError) as e:
        return f"{touch.target}: no signature ({e})"
    names = [p.name for p in params]
    if touch.use in ("override", "swap"):
        if tuple(names) != touch.params:
            return f"{touch.target}: parameters {names}, expected {list(touch.params)}"
        return None
    takes_kwargs = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params)
    unknown = [n for n in touch.params if n not in names and not takes_kwargs]
    required = [
        p.name
        for p in params
        if p.default is inspect.Parameter.empty
        and p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
        and p.name not in touch.params
    ]
    if unknown or required:
        called = list(touch.params)
        return f"{touch.target}: called with {called}; unknown {unknown}, missing {required}"
    return None


def _attribute_problem(touch: Touch, obj: object) -> str | None:
    missing = [name for name in touch.params if not hasattr(obj, name)]
    if missing and inspect.isclass(obj):
        # Instance attributes: set somewhere in the class's (or its bases') source.
        sources = []
        for cls in obj.__mro__:
            try:
                sources.append(inspect.getsource(cls))
            except (OSError, TypeError):
                continue
        text = "\n".join(sources)
        missing = [name for name in missing if f"self.{name}" not in text]
    if missing:
        return f"{touch.target}: no attribute(s) {missing}"
    return None


def broken(group: str | None = None) -> list[str]:
    """Problems of every entry (of `group`, when given) against the installed verl."""
    return [
        message
        for touch in CONTRACT
        if group is None or touch.group == group
        if (message := problem(touch)) is not None
    ]


def installed_verl_version() -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("verl")
    except PackageNotFoundError:
        return None


def version_warning(installed: str | None = None) -> str | None:
    """A message naming the tested range when the installed verl is outside it, else None."""
    installed = installed if installed is not None else installed_verl_version()
    if installed is None or installed in TESTED_VERL:
        return None
    return (
        f"exit-verl is tested with verl {TESTED_RANGE}; the installed verl is {installed}. "
        "The private verl methods ExIt overrides are checked at start-up "
        "(exit_verl.verl.contract), but behaviour outside the tested range is unverified."
    )


def warn_if_untested() -> None:
    message = version_warning()
    if message is not None:
        logger.warning(message)


def require_trainer_contract() -> None:
    """RuntimeError listing every broken "trainer" entry; ExIt must not run on a verl whose
    hooks it would silently miss."""
    problems = broken("trainer")
    if problems:
        raise RuntimeError(
            f"exit-verl cannot run on this verl ({installed_verl_version()}; tested "
            f"{TESTED_RANGE}): " + "; ".join(problems)
        )
