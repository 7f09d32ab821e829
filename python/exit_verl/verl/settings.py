"""The `exit` node of verl's config, and the verl settings ExIt needs, checked in one place.

verl's `ppo_trainer` config has no `exit` node, so on verl's own entry point the keys are
added with hydra's `+`: `+exit.preset=<name>` picks `ExItConfig.preset(name, domain)` (default
"exit"), `+exit.domain=<domain>` its domain (default "math"), every other `+exit.<field>=...`
overrides one ExItConfig field, and the keys of `PluginOptions` tune the verl side.
OmegaConf merges the overrides into the preset as a structured config, so an unknown key or a
value of the wrong type fails with OmegaConf's message naming the key; ExItConfig's own
validation then checks ranges and names.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from exit_verl.config import ExItConfig
from exit_verl.verl.mode import ASYNC_TRAINER_MODE

DEFAULT_PRESET = "exit"
DEFAULT_DOMAIN = "math"
# verl's estimators that compare the G responses of one prompt (grouped by uid), reading the
# outcome as the sum of the token-level rewards.
GROUP_ESTIMATORS = (
    "grpo",
    "grpo_vectorized",
    "grpo_passk",
    "rloo",
    "rloo_vectorized",
    "reinforce_plus_plus_baseline",
    "opo",
)


@dataclass
class PluginOptions:
    """`exit.*` keys that belong to the verl side, not to the curriculum.

    `ref_reset_every` / `ref_reset_alpha` as given (None: the domain's paper values,
    `presets.REFERENCE_RESET`); `ExItSettings.reference` holds what the run uses.
    """

    # Multi-step self-improvement at each verl validation: K improvement steps after the first
    # answer (0 turns it off), `val_samples` independent chains per task (avg@n), on at most
    # `val_max_tasks` validation tasks (the first ones of verl's validation set).
    val_iterations: int = 0
    val_samples: int = 1
    val_max_tasks: int = 256
    # torch threads for the diversity-bonus embedder in the trainer process. Ray starts
    # verl's task runner with OMP_NUM_THREADS=1; None uses every CPU this process may run on.
    embed_threads: int | None = None
    # Where the embedder runs: "auto" (a GPU Ray gave verl's task runner, else the CPU),
    # "cpu", "cuda" or "cuda:<i>".
    embed_device: str = "auto"
    # Let `exit.embedder=<hub name>` download the model when it is not in the local cache.
    embedder_download: bool = False
    # Reference reset (the paper's trainer): every `ref_reset_every` steps (0: never),
    # ref <- alpha * actor + (1 - alpha) * ref. None: the domain's paper values.
    ref_reset_every: int | None = None
    ref_reset_alpha: float | None = None

    def __post_init__(self) -> None:
        if self.val_iterations < 0:
            raise ValueError(f"exit.val_iterations must be >= 0, got {self.val_iterations}")
        for name in ("val_samples", "val_max_tasks"):
            if getattr(self, name) < 1:
                raise ValueError(f"exit.{name} must be >= 1, got {getattr(self, name)}")
        if self.embed_threads is not None and self.embed_threads < 1:
            raise ValueError(f"exit.embed_threads must be >= 1, got {self.embed_threads}")
        check_device(self.embed_device)
        if self.ref_reset_every is not None and self.ref_reset_every < 0:
            raise ValueError(f"exit.ref_reset_every must be >= 0, got {self.ref_reset_every}")
        alpha = self.ref_reset_alpha
        if alpha is not None and not (math.isfinite(alpha) and 0.0 < alpha <= 1.0):
            raise ValueError(f"exit.ref_reset_alpha must be in (0, 1], got {alpha}")


def check_device(device: str) -> None:
    if not re.fullmatch(r"auto|cpu|cuda(:\d+)?", device):
        raise ValueError(f"exit.embed_device must be auto, cpu, cuda or cuda:<i>, got {device!r}")


@dataclass(frozen=True)
class ReferenceReset:
    """ref <- alpha * actor + (1 - alpha) * ref after every `every`-th step (0: never);
    `note` says why the paper's default reset is off in this run, when it is."""

    every: int = 0
    alpha: float = 1.0
    note: str = ""

    def due(self, step: int) -> bool:
        return self.every > 0 and step > 0 and step % self.every == 0


@dataclass(frozen=True)
class ExItSettings:
    preset: str
    domain: str
    curriculum: ExItConfig
    options: PluginOptions
    reference: ReferenceReset = ReferenceReset()


OPTION_KEYS = frozenset(f.name for f in fields(PluginOptions))


def exit_settings(config: Mapping[str, Any]) -> ExItSettings:
    """ExIt settings from a composed verl config; ValueError / KeyError on a bad setting."""
    from omegaconf import DictConfig, OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    check_verl_settings(config)
    node = config.get("exit", None)
    if node is None:
        values: dict[str, Any] = {}
    elif isinstance(node, DictConfig):
        values = OmegaConf.to_container(node, resolve=True)  # type: ignore[assignment]
    elif isinstance(node, Mapping):
        values = dict(node)
    else:
        raise ValueError(f"exit must be a mapping of settings, got {node!r}")
    preset = str(values.pop("preset", DEFAULT_PRESET))
    domain = str(values.pop("domain", DEFAULT_DOMAIN))
    options = {k: values.pop(k) for k in list(values) if k in OPTION_KEYS}
    try:
        base = ExItConfig.preset(preset, domain)
        merged = OmegaConf.merge(OmegaConf.structured(base), values)
        curriculum = OmegaConf.to_object(merged)
        plugin = OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(PluginOptions), options))
    except OmegaConfBaseException as e:
        known = sorted({f.name for f in fields(ExItConfig)} | OPTION_KEYS | {"preset", "domain"})
        raise ValueError(f"bad exit.* setting: {e}\nvalid exit keys: {', '.join(known)}") from None
    assert isinstance(curriculum, ExItConfig) and isinstance(plugin, PluginOptions)
    check_embedder_installed(curriculum, plugin)
    check_filter_groups(config, curriculum)
    reference = reference_reset(config, domain, plugin)
    temperature = config["actor_rollout_ref"]["rollout"].get("val_kwargs", {}).get("temperature", 0)
    if plugin.val_samples > 1 and plugin.val_iterations > 0 and not temperature:
        raise ValueError(
            f"exit.val_samples={plugin.val_samples} chains per task are copies of each other "
            "under greedy validation: set actor_rollout_ref.rollout.val_kwargs.temperature > 0"
        )
    return ExItSettings(preset, domain, curriculum, plugin, reference)


def has_reference_policy(config: Mapping[str, Any]) -> bool:
    """verl builds a reference policy only for a KL term (`need_reference_policy`)."""
    actor = config["actor_rollout_ref"].get("actor", None) or {}
    return bool(config["algorithm"].get("use_kl_in_reward", False)) or bool(
        actor.get("use_kl_loss", False)
    )


def uses_lora(config: Mapping[str, Any]) -> bool:
    """verl's own test for a LoRA actor (`PPOTrainer._setup`: `ref_in_actor`)."""
    model = config["actor_rollout_ref"].get("model", None) or {}
    rank = (model.get("lora", None) or {}).get("rank", 0) or model.get("lora_rank", 0)
    return bool(rank and int(rank) > 0) or model.get("lora_adapter_path", None) is not None


def reset_unsupported(config: Mapping[str, Any]) -> str | None:
    """Why this run's reference cannot be reset, or None."""
    if not has_reference_policy(config):
        return (
            "verl builds a reference policy only with a KL term: set "
            "actor_rollout_ref.actor.use_kl_loss=true (or algorithm.use_kl_in_reward=true)"
        )
    actor = config["actor_rollout_ref"].get("actor", None) or {}
    if actor.get("strategy", None) != "fsdp2":
        return (
            "the reference reset updates FSDP2-sharded weights in place: set "
            f"actor_rollout_ref.actor.strategy=fsdp2 (got {actor.get('strategy', None)})"
        )
    checkpoint = actor.get("checkpoint", None) or {}
    if uses_lora(config) and checkpoint.get("save_lora_only", False):
        return (
            "with LoRA the reset moves the adapter into the base weights, which "
            "actor_rollout_ref.actor.checkpoint.save_lora_only=true leaves out of checkpoints"
        )
    return None


def reference_reset(
    config: Mapping[str, Any], domain: str, options: PluginOptions
) -> ReferenceReset:
    """The run's reference reset: the user's `exit.ref_reset_*`, else the domain's paper values
    (presets.REFERENCE_RESET). Where this run's reference cannot be reset (no KL term, another
    engine, LoRA checkpoints without base weights) the paper's default is off (with a note)
    and an explicit `exit.ref_reset_every > 0` is a ValueError naming the setting."""
    from exit_verl.presets import REFERENCE_RESET

    every, alpha = REFERENCE_RESET.get(domain, (0, 1.0))
    if options.ref_reset_every is not None:
        every = options.ref_reset_every
    if options.ref_reset_alpha is not None:
        alpha = options.ref_reset_alpha
    explicit = options.ref_reset_every is not None
    if every == 0 or (not explicit and not has_reference_policy(config)):
        return ReferenceReset(0, alpha)  # nothing to reset: off without a note
    reason = reset_unsupported(config)
    if reason is None:
        return ReferenceReset(every, alpha)
    if explicit:
        raise ValueError(f"exit.ref_reset_every={every} cannot be honoured: {reason}")
    return ReferenceReset(0, alpha, note=f"the paper's reference reset is off: {reason}")


def check_embedder_installed(config: ExItConfig, options: PluginOptions) -> None:
    """A bonus that embeds responses needs its model where verl's trainer runs, without a
    download unless `exit.embedder_download` allows one: fail at start-up rather than at the
    first observed step."""
    from exit_verl.bonus import BONUSES
    from exit_verl.embedding import locate_embedder

    if not BONUSES[config.diversity_bonus].needs_embeddings:
        return
    try:
        locate_embedder(config.embedder, allow_download=options.embedder_download)
    except RuntimeError as e:
        raise ValueError(
            f"exit.diversity_bonus={config.diversity_bonus} embeds responses with "
            f"exit.embedder={config.embedder}: {e}. Or set +exit.diversity_bonus=none"
        ) from None


def check_filter_groups(config: Mapping[str, Any], curriculum: ExItConfig) -> None:
    """verl's group filter (`algorithm.filter_groups`, DAPO) runs in its replay buffer on the
    rewards verl's reward loop wrote, before ExIt turns them into training rewards. The two
    agree on which groups have no signal only when the training rewards are a tie-preserving
    function of the task rewards: the "raw" iteration reward (an affine `reward_range`) and a
    bonus that leaves rewards alone. Otherwise the filter would drop groups that train with
    signal (a reward-side bonus spreads an all-solved group) or keep groups that train
    without (the improvement reward clips worse attempts to 0): refused."""
    from exit_verl.bonus import BONUSES

    filter_groups = config["algorithm"].get("filter_groups", None) or {}
    if not filter_groups.get("enable", False):
        return
    reasons = []
    if curriculum.iteration_reward != "raw":
        reasons.append(f"exit.iteration_reward={curriculum.iteration_reward}")
    if not BONUSES[curriculum.diversity_bonus].keeps_rewards:
        reasons.append(f"exit.diversity_bonus={curriculum.diversity_bonus}")
    if reasons:
        raise ValueError(
            "algorithm.filter_groups filters groups on the task rewards before ExIt shapes "
            f"them, and {' and '.join(reasons)} make(s) the training rewards differ in which "
            "groups are all-equal: disable algorithm.filter_groups, or use "
            "exit.iteration_reward=raw with an advantage-side bonus (centroid, knn, none)"
        )


def check_verl_settings(config: Mapping[str, Any]) -> None:
    """The verl settings ExIt relies on; ValueError naming the setting to change."""
    estimator = str(config["algorithm"]["adv_estimator"])
    if estimator not in GROUP_ESTIMATORS:
        raise ValueError(
            f"ExIt needs a group-based advantage estimator ({', '.join(GROUP_ESTIMATORS)}); "
            f"got algorithm.adv_estimator={estimator}"
        )
    if int(config["actor_rollout_ref"]["rollout"]["n"]) < 2:
        raise ValueError("ExIt needs actor_rollout_ref.rollout.n >= 2 (the group size G)")
    trainer = config["trainer"]
    if not trainer.get("use_v1", True):
        raise ValueError("ExIt is a mode of verl's v1 trainer: set trainer.use_v1=true")
    for name, skip in (config.get("skip", None) or {}).items():
        if isinstance(skip, Mapping) and skip.get("enable", False):
            raise ValueError(
                f"skip.{name} replays cached trajectories under the uids of new prompts, so "
                f"ExIt would archive answers to prompts that were never asked: set "
                f"skip.{name}.enable=false"
            )
    if trainer["v1"].get("trainer_mode", None) == ASYNC_TRAINER_MODE:
        reward_model = config["reward"]["reward_model"]
        if reward_model.get("enable", False) and not reward_model.get(
            "enable_resource_pool", False
        ):
            raise ValueError(
                "exit_colocate_async observes the groups verl's async replay buffer drops "
                "(stale, filtered, failed) and needs their rewards at sampling time, which a "
                "colocated reward model computes only later: use a rule-based reward or "
                "reward.reward_model.enable_resource_pool=true"
            )
    sampler = trainer["v1"].get("sampler", {}) or {}
    custom = sampler.get("custom_sampler", None) or {}
    if custom.get("path") or custom.get("name"):
        raise ValueError(
            "ExIt observes the groups verl's replay buffer drops, so it needs verl's built-in "
            "ReplayBuffer: unset trainer.v1.sampler.custom_sampler"
        )
