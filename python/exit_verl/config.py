"""`ExItConfig`: every knob of the ExIt curriculum, usable as an OmegaConf structured config.

The defaults are the paper's full ExIt on math (arXiv 2509.04575, Table 4 "ExIt" column,
§4.1–4.2): `ExItConfig() == ExItConfig.preset("exit", "math")`. `preset(name, domain)`
gives every column of the ablation ladder (exit_verl.presets). Where the paper is silent
the value is ours and docs/exit.md says why (κ, which responses become children, the
embedder).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from exit_verl.prompts import Templates

PRIORITIZATIONS = ("softmax", "rank", "proportional")
ADMISSIONS = ("not_below_min", "always")
CHILD_SELECTIONS = ("random", "best")
# The archive addresses slots with 32-bit integers (exit-archive's MAX_CAPACITY).
MAX_ARCHIVE_CAPACITY = 2**32 - 2


@dataclass
class ExItConfig:
    """ExIt curriculum settings (see the module docstring and docs/exit.md)."""

    # Selection: replay an archived history with probability `p_replay` once the archive
    # holds `min_archive_size` entries; a replay is a self-divergence step with `p_diverge`.
    p_replay: float = 0.5
    min_archive_size: int = 128
    p_diverge: float = 0.2
    # False: the curriculum-only ablation — the archive holds base tasks scored by
    # learnability and replays them unchanged; no self-iteration, no children.
    iterate: bool = True
    # Archive (exit_verl.TaskArchive): the paper's sampling P ∝ exp(κ·S) with
    # κ = 1 / temperature, its admission rule, no staleness. "rank" / staleness are ours.
    capacity: int = 512
    prioritization: str = "softmax"
    temperature: float = 0.1
    staleness_coef: float = 0.0
    admission: str = "not_below_min"
    # Rewards: task rewards are rescaled by the fixed `reward_range` to [0, 1]; the
    # training reward is "raw" (the rescaled reward) or "improvement" (max(0, Δ/Δmax) on
    # improve steps), by name from exit_verl.scoring.ITERATION_REWARDS.
    reward_range: tuple[float, float] = (0.0, 1.0)
    iteration_reward: str = "raw"
    # Group learnability S, by name from exit_verl.scoring.LEARNABILITY.
    learnability: str = "variance"
    # Children: each observed group adds `children_per_group` of its responses (0 = all
    # G), chosen uniformly at random ("random") or highest reward first ("best"), with the
    # group's S as initial score. `min_child_learnability` t (ours): only groups with S > t
    # add children. `max_depth` (ours): no children beyond this replay depth.
    children_per_group: int = 1
    child_selection: str = "random"
    min_child_learnability: float | None = None
    max_depth: int | None = None
    # Diversity bonus, by name from exit_verl.bonus.BONUSES: "centroid" (the paper's,
    # multiplies advantages), "knn" (ours, archive novelty), "centroid_reward" /
    # "knn_reward" (ours, multiply rewards by 1 + diversity_coef · s), "none".
    diversity_bonus: str = "centroid"
    diversity_coef: float = 0.5
    novelty_k: int = 8
    # Embedder for the bonus, loaded on first use: "minilm" (all-MiniLM-L6-v2, offline), a
    # sentence-transformers model folder or hub name (exit_verl.embedding), or "hashing".
    embedder: str = "minilm"
    # Prompts: template family (exit_verl.prompts.TEMPLATES) and optional overrides.
    domain: str = "math"
    improve_template: str | None = None
    diverge_template: str | None = None
    system_prompt: str | None = None

    def __post_init__(self) -> None:
        self.reward_range = tuple(self.reward_range)  # type: ignore[assignment]
        self.validate()

    @classmethod
    def preset(cls, name: str, domain: str = "math", **overrides: Any) -> ExItConfig:
        """One column of the paper's Tables 4–6 (`name` in grpo, curriculum, improve,
        diverge, exit; `domain` in math, tool_use, mle), then `overrides`."""
        from exit_verl.presets import preset_values

        return cls.from_dict({**preset_values(name, domain), **overrides})

    def validate(self) -> None:
        """ValueError naming the first setting of the wrong type or out of range; every
        setting is checked here, so a config that validates builds a working curriculum."""
        for name in ("p_replay", "p_diverge", "staleness_coef"):
            _number(name, getattr(self, name), lo=0.0, hi=1.0)
        _integer("capacity", self.capacity, lo=1, hi=MAX_ARCHIVE_CAPACITY)
        _integer("min_archive_size", self.min_archive_size, lo=1, hi=self.capacity)
        _integer("novelty_k", self.novelty_k, lo=1, hi=MAX_ARCHIVE_CAPACITY)
        _integer("children_per_group", self.children_per_group, lo=0)
        if self.max_depth is not None:
            _integer("max_depth", self.max_depth, lo=1)
        _number("temperature", self.temperature, lo=0.0, lo_open=True)
        _number("diversity_coef", self.diversity_coef, lo=0.0)
        if self.min_child_learnability is not None:
            _number("min_child_learnability", self.min_child_learnability)
        if not isinstance(self.iterate, bool):
            raise ValueError(f"iterate must be true or false, got {self.iterate!r}")
        _one_of("prioritization", self.prioritization, PRIORITIZATIONS)
        _one_of("admission", self.admission, ADMISSIONS)
        _one_of("child_selection", self.child_selection, CHILD_SELECTIONS)
        if not self.iterate and self.p_diverge > 0:
            raise ValueError("p_diverge needs iterate=True (base-task replays do not diverge)")
        from exit_verl.bonus import BONUSES
        from exit_verl.scoring import ITERATION_REWARDS, LEARNABILITY, check_reward_range

        check_reward_range(self.reward_range)
        _one_of("learnability", self.learnability, tuple(LEARNABILITY))
        _one_of("iteration_reward", self.iteration_reward, tuple(ITERATION_REWARDS))
        _one_of("diversity_bonus", self.diversity_bonus, tuple(BONUSES))
        if not self.iterate and BONUSES[self.diversity_bonus].needs_novelty:
            raise ValueError("archive-novelty bonuses need iterate=True (responses archived)")
        if not isinstance(self.embedder, str) or not self.embedder.strip():
            raise ValueError(f"embedder must be a model name or path, got {self.embedder!r}")
        self.templates()  # unknown domain or a template without placeholders

    def templates(self) -> Templates:
        """The prompt templates these settings select (domain family plus overrides)."""
        from exit_verl.prompts import templates_for

        return templates_for(
            self.domain, self.improve_template, self.diverge_template, self.system_prompt
        )

    def to_dict(self) -> dict[str, Any]:
        values = asdict(self)
        values["reward_range"] = list(self.reward_range)
        return values

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> ExItConfig:
        reject_unknown_keys(cls, values, "ExItConfig")
        return cls(**values)


def _integer(name: str, value: Any, lo: int, hi: int | None = None) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    if value < lo or (hi is not None and value > hi):
        bound = f"in [{lo}, {hi}]" if hi is not None else f">= {lo}"
        raise ValueError(f"{name} must be {bound}, got {value}")


def _number(
    name: str,
    value: Any,
    lo: float | None = None,
    hi: float | None = None,
    lo_open: bool = False,
) -> None:
    """A finite real number within the bounds (`lo_open`: strictly above `lo`)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{name} must be a number, got {value!r}")
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value}")
    below = lo is not None and (value <= lo if lo_open else value < lo)
    if below or (hi is not None and value > hi):
        low = "" if lo is None else (f"> {lo}" if lo_open else f">= {lo}")
        high = "" if hi is None else f"<= {hi}"
        raise ValueError(f"{name} must be {' and '.join(b for b in (low, high) if b)}, got {value}")


def _one_of(name: str, value: Any, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ValueError(f"{name} must be one of {sorted(allowed)}, got {value!r}")


def reject_unknown_keys(cls: type, values: dict[str, Any], what: str) -> None:
    """KeyError naming every key of `values` that is not a field of the dataclass `cls`."""
    unknown = sorted(set(values) - {f.name for f in fields(cls)})
    if unknown:
        raise KeyError(f"unknown {what} keys: {unknown}")
