"""`ExItConfig`: every knob of the ExIt curriculum, usable as an OmegaConf structured config."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from exit_verl.prompts import Templates

DIVERSITY_BONUSES = ("none", "centroid", "knn", "both")
PRIORITIZATIONS = ("rank", "proportional")


@dataclass
class ExItConfig:
    """ExIt curriculum settings.

    Defaults follow the paper (arXiv 2509.04575) and its community implementation (the
    verifiers `self-improve` environment) where they state one: replay probability 0.5 once
    the archive holds 64 entries, self-divergence probability 0.1, learnability = variance of
    min-max normalized group returns, rank prioritization 1/rank. PLR (Jiang et al. 2021)
    supplies the staleness mix; its coefficient 0.1 is our default. Where neither says
    (capacity, depth cap, bonus scale, clip budget) the value is ours, chosen for small runs.
    """

    # Selection: replay an archived partial history with this probability once the archive
    # holds `min_archive_size` entries; a replay is a self-divergence step with `p_diverge`.
    p_replay: float = 0.5
    min_archive_size: int = 64
    p_diverge: float = 0.1
    # Archive (exit_verl.TaskArchive) options.
    capacity: int = 4096
    prioritization: str = "rank"
    temperature: float = 1.0
    staleness_coef: float = 0.1
    # Group learnability, by name from exit_verl.scoring.LEARNABILITY.
    learnability: str = "variance"
    # Diversity bonus on rewards: "none" | "centroid" (paper) | "knn" (archive novelty) | "both".
    diversity_bonus: str = "none"
    diversity_coef: float = 0.5
    novelty_k: int = 8
    # Children: groups whose learnability exceeds this add their responses to the archive.
    min_child_learnability: float = 0.0
    # At most this many responses per group become children (highest raw reward first);
    # 0 means all of them.
    children_per_group: int = 0
    # Deepest replay (number of earlier attempts in a chain) that may enter the archive.
    max_depth: int = 8
    # Prompts: template family and an optional override of each template
    # (placeholders {task} and {attempt}); the earlier attempt is clipped to this many chars.
    domain: str = "math"
    improve_template: str | None = None
    diverge_template: str | None = None
    system_prompt: str | None = None
    attempt_clip_chars: int = 2000
    # Embedder used by the diversity bonus: "minilm" (all-MiniLM-L6-v2, offline) or "hashing".
    embedder: str = "minilm"

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        def prob(name: str) -> None:
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {value}")

        for name in ("p_replay", "p_diverge", "staleness_coef"):
            prob(name)
        if self.capacity < 1:
            raise ValueError(f"capacity must be >= 1, got {self.capacity}")
        if self.min_archive_size < 1:
            raise ValueError(f"min_archive_size must be >= 1, got {self.min_archive_size}")
        if self.prioritization not in PRIORITIZATIONS:
            raise ValueError(f"prioritization must be one of {PRIORITIZATIONS}")
        if not self.temperature > 0:
            raise ValueError(f"temperature must be > 0, got {self.temperature}")
        if self.diversity_bonus not in DIVERSITY_BONUSES:
            raise ValueError(
                f"diversity_bonus must be one of {DIVERSITY_BONUSES}, got {self.diversity_bonus!r}"
            )
        if self.diversity_coef < 0:
            raise ValueError(f"diversity_coef must be >= 0, got {self.diversity_coef}")
        if self.novelty_k < 1:
            raise ValueError(f"novelty_k must be >= 1, got {self.novelty_k}")
        if self.children_per_group < 0:
            raise ValueError("children_per_group must be >= 0 (0 = all)")
        if self.max_depth < 1:
            raise ValueError(f"max_depth must be >= 1, got {self.max_depth}")
        if self.attempt_clip_chars < 16:
            raise ValueError("attempt_clip_chars must be >= 16")
        from exit_verl.scoring import LEARNABILITY  # local: scoring imports nothing heavy

        if self.learnability not in LEARNABILITY:
            raise ValueError(
                f"learnability must be one of {sorted(LEARNABILITY)}, got {self.learnability!r}"
            )

    def templates(self) -> Templates:
        """The prompt templates these settings select (domain family plus overrides)."""
        from exit_verl.prompts import templates_for

        return templates_for(
            self.domain, self.improve_template, self.diverge_template, self.system_prompt
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> ExItConfig:
        reject_unknown_keys(cls, values, "ExItConfig")
        return cls(**values)


def reject_unknown_keys(cls: type, values: dict[str, Any], what: str) -> None:
    """KeyError naming every key of `values` that is not a field of the dataclass `cls`."""
    unknown = sorted(set(values) - {f.name for f in fields(cls)})
    if unknown:
        raise KeyError(f"unknown {what} keys: {unknown}")
