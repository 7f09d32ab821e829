"""`ExItConfig`: every knob of the ExIt curriculum, usable as an OmegaConf structured config.

The defaults are the paper's full ExIt on math (arXiv 2509.04575, Table 4 "ExIt" column,
§4.1–4.2): `ExItConfig() == ExItConfig.preset("exit", "math")`. `preset(name, domain)`
gives every column of the ablation ladder (exit_verl.presets). Where the paper is silent
the value is ours and docs/exit.md says why (κ, which responses become children, the
embedder).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from exit_verl.prompts import Templates

PRIORITIZATIONS = ("softmax", "rank", "proportional")
ADMISSIONS = ("not_below_min", "always")
CHILD_SELECTIONS = ("random", "best")


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
    # Embedder for the bonus, loaded on first use: "minilm" (all-MiniLM-L6-v2) or "hashing".
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
        """ValueError naming the first setting out of range."""
        for name in ("p_replay", "p_diverge", "staleness_coef"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {value}")
        for name in ("capacity", "min_archive_size", "novelty_k"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        _one_of("prioritization", self.prioritization, PRIORITIZATIONS)
        _one_of("admission", self.admission, ADMISSIONS)
        _one_of("child_selection", self.child_selection, CHILD_SELECTIONS)
        if not self.temperature > 0:
            raise ValueError(f"temperature must be > 0, got {self.temperature}")
        if self.diversity_coef < 0:
            raise ValueError(f"diversity_coef must be >= 0, got {self.diversity_coef}")
        if self.children_per_group < 0:
            raise ValueError("children_per_group must be >= 0 (0 = all responses)")
        if self.max_depth is not None and self.max_depth < 1:
            raise ValueError(f"max_depth must be >= 1 or None, got {self.max_depth}")
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
        if self.embedder not in ("minilm", "hashing"):
            raise ValueError(f"embedder must be 'minilm' or 'hashing', got {self.embedder!r}")
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


def _one_of(name: str, value: Any, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ValueError(f"{name} must be one of {sorted(allowed)}, got {value!r}")


def reject_unknown_keys(cls: type, values: dict[str, Any], what: str) -> None:
    """KeyError naming every key of `values` that is not a field of the dataclass `cls`."""
    unknown = sorted(set(values) - {f.name for f in fields(cls)})
    if unknown:
        raise KeyError(f"unknown {what} keys: {unknown}")
