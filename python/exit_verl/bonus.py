"""Diversity bonuses as small pure functions, registered by name (verl core_algos style).

A bonus sees one GRPO group (`BonusGroup`: its G training rewards, the responses'
embeddings and/or their archive novelty) and returns `(rewards, advantage_scale)`: the
rewards verl's advantage estimator should see and a factor >= 0 for each response's
advantage. `register_bonus(name, embeddings=..., novelty=..., keeps_rewards=...)` declares
what it reads, so the curriculum embeds responses (and loads the embedder) only when a bonus
needs them, and whether it returns the rewards unchanged (verl's group filter, which reads
the rewards before any bonus, agrees with training only then).

The paper's bonus (§4.2, Eq. 6, after Chung et al. 2025) is "centroid":

    d_i = || e_i − (1/G) Σ_j e_j ||₂          (e_i: unit-norm embedding of response i)
    w_i = (d_i − min_j d_j) / (max_j d_j − min_j d_j)
    A_i ← w_i · A_i                            (A_i: the group-relative advantage)

Eq. 6 as printed has no "− min_j d_j" in the numerator; Chung et al. weight each
response by its deviation scaled to [0, 1] within the prompt's group, which the min-max
form gives, as their released code does (mj-storytelling/DiversityTuning: per-prompt
(s − min)/(max − min)). The printed form is that plus the group constant min/(max − min),
which grows without bound as the distances get close. When all distances are equal (always so for
G <= 2) the group carries no diversity signal and w_i = 1: advantages are unchanged.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

# Distances closer than this (relative to the largest) count as equal.
TIE_TOLERANCE = 1e-9


@dataclass(frozen=True)
class BonusGroup:
    """One group's inputs: (G,) training rewards, (G, D) embeddings, (G,) archive novelty."""

    rewards: np.ndarray
    embeddings: np.ndarray | None = None
    novelty: np.ndarray | None = None
    coef: float = 0.5


BonusFn = Callable[[BonusGroup], tuple[np.ndarray, np.ndarray]]


@dataclass(frozen=True)
class Bonus:
    fn: BonusFn
    needs_embeddings: bool
    needs_novelty: bool
    keeps_rewards: bool = False


BONUSES: dict[str, Bonus] = {}


def register_bonus(
    name: str, *, embeddings: bool = False, novelty: bool = False, keeps_rewards: bool = False
) -> Callable[[BonusFn], BonusFn]:
    def wrap(fn: BonusFn) -> BonusFn:
        BONUSES[name] = Bonus(fn, embeddings or novelty, novelty, keeps_rewards)
        return fn

    return wrap


# -- building blocks ----------------------------------------------------------------------


def centroid_distances(embeddings: np.ndarray) -> np.ndarray:
    """Euclidean distance of each response embedding to its group's mean embedding."""
    e = np.asarray(embeddings, dtype=np.float64)
    return np.linalg.norm(e - e.mean(axis=0, keepdims=True), axis=1)


def _spread(values: np.ndarray) -> tuple[float, float, bool]:
    lo, hi = float(values.min()), float(values.max())
    return lo, hi, hi - lo > TIE_TOLERANCE * max(abs(hi), abs(lo), 1e-300)


def range_normalize(values: np.ndarray) -> np.ndarray:
    """(v − min) / (max − min) within the group; zeros when the group has no spread.

    Infinite values (e.g. novelty against an empty archive) count as the far end, 1.
    """
    v = np.asarray(values, dtype=np.float64)
    finite = np.isfinite(v)
    out = np.zeros_like(v)
    if finite.sum() < 2:
        return out
    lo, hi, spread = _spread(v[finite])
    if spread:
        out[finite] = (v[finite] - lo) / (hi - lo)
    out[~finite] = 1.0
    return out


def diversity_weights(distances: np.ndarray) -> np.ndarray:
    """w_i = (d_i − min) / (max − min); exactly 1 everywhere when the distances tie."""
    d = np.asarray(distances, dtype=np.float64)
    if d.size == 0:
        return np.ones(0)
    lo, hi, spread = _spread(d)
    if not spread:
        return np.ones_like(d)
    return (d - lo) / (hi - lo)


def _ones(group: BonusGroup) -> np.ndarray:
    return np.ones(np.asarray(group.rewards).shape[0])


def _rewards(group: BonusGroup) -> np.ndarray:
    return np.asarray(group.rewards, dtype=np.float64).copy()


# -- registered bonuses -------------------------------------------------------------------


@register_bonus("none", keeps_rewards=True)
def no_bonus(group: BonusGroup) -> tuple[np.ndarray, np.ndarray]:
    """Rewards as they are, advantage scale exactly 1."""
    return _rewards(group), _ones(group)


@register_bonus("centroid", embeddings=True, keeps_rewards=True)
def centroid_advantage_bonus(group: BonusGroup) -> tuple[np.ndarray, np.ndarray]:
    """The paper's bonus: advantages times the min-max scaled distance to the centroid."""
    assert group.embeddings is not None
    return _rewards(group), diversity_weights(centroid_distances(group.embeddings))


@register_bonus("knn", novelty=True, keeps_rewards=True)
def knn_advantage_bonus(group: BonusGroup) -> tuple[np.ndarray, np.ndarray]:
    """Ours: the same law on archive novelty (mean k-NN distance to archived responses)."""
    assert group.novelty is not None
    novelty = np.asarray(group.novelty, dtype=np.float64)
    if not np.isfinite(novelty).all():  # empty archive: every response infinitely novel
        return _rewards(group), _ones(group)
    return _rewards(group), diversity_weights(novelty)


@register_bonus("centroid_reward", embeddings=True)
def centroid_reward_bonus(group: BonusGroup) -> tuple[np.ndarray, np.ndarray]:
    """Ours (earlier default): r_i · (1 + coef · s_i), s = range-normalized centroid distance.

    Acts on rewards, so it changes which responses the estimator ranks higher, and gives
    all-successful groups a non-zero advantage; failures (r = 0) stay at 0.
    """
    assert group.embeddings is not None
    spread = range_normalize(centroid_distances(group.embeddings))
    return _rewards(group) * (1.0 + group.coef * spread), _ones(group)


@register_bonus("knn_reward", novelty=True)
def knn_reward_bonus(group: BonusGroup) -> tuple[np.ndarray, np.ndarray]:
    """Ours: r_i · (1 + coef · s_i), s = range-normalized archive novelty."""
    assert group.novelty is not None
    spread = range_normalize(group.novelty)
    return _rewards(group) * (1.0 + group.coef * spread), _ones(group)
