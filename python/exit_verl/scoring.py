"""Group learnability and diversity bonuses as small pure functions, registered by name."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

LEARNABILITY: dict[str, Callable[[np.ndarray], float]] = {}


def register_learnability(name: str) -> Callable[[Callable], Callable]:
    def wrap(fn: Callable[[np.ndarray], float]) -> Callable[[np.ndarray], float]:
        LEARNABILITY[name] = fn
        return fn

    return wrap


@register_learnability("variance")
def normalized_variance(returns: np.ndarray) -> float:
    """Variance of the group's min-max normalized returns (the paper's learnability).

    A group whose returns are all equal has learnability 0: GRPO gets no signal from it.
    """
    r = np.asarray(returns, dtype=np.float64)
    span = r.max() - r.min()
    if span <= 1e-12:
        return 0.0
    return float(np.var((r - r.min()) / span))


@register_learnability("raw_variance")
def raw_variance(returns: np.ndarray) -> float:
    """Variance of the raw returns (scale-dependent)."""
    return float(np.var(np.asarray(returns, dtype=np.float64)))


@register_learnability("binary")
def success_variance(returns: np.ndarray) -> float:
    """p(1 − p) with p the group's success rate (returns > 0.5), PLR-style for 0/1 rewards."""
    p = float(np.mean(np.asarray(returns, dtype=np.float64) > 0.5))
    return p * (1.0 - p)


def range_normalize(values: np.ndarray) -> np.ndarray:
    """(v − min) / (max − min) within the group; all zeros when the group has no spread."""
    v = np.asarray(values, dtype=np.float64)
    finite = np.isfinite(v)
    out = np.zeros_like(v)
    if finite.sum() < 2:
        return out
    lo, hi = v[finite].min(), v[finite].max()
    if hi - lo <= 1e-12:
        return out
    out[finite] = (v[finite] - lo) / (hi - lo)
    out[~finite] = 1.0  # infinitely novel: the far end of the range
    return out


def centroid_distances(embeddings: np.ndarray) -> np.ndarray:
    """Euclidean distance of each response embedding to its group's mean embedding."""
    e = np.asarray(embeddings, dtype=np.float64)
    return np.linalg.norm(e - e.mean(axis=0, keepdims=True), axis=1)


def multiplicative_bonus(rewards: np.ndarray, spread: np.ndarray, coef: float) -> np.ndarray:
    """r_i · (1 + coef · s_i): upweights responses that are successful and far out (s in [0, 1]).

    Multiplying (not adding) keeps a failed response at reward 0, so only successful
    responses gain from being different — the paper's multiplicative diversity bonus.
    """
    return np.asarray(rewards, dtype=np.float64) * (1.0 + coef * np.asarray(spread))


def centroid_bonus(rewards: np.ndarray, embeddings: np.ndarray, coef: float) -> np.ndarray:
    """The paper's bonus: s_i = range-normalized distance to the group centroid.

    The paper multiplies by a bonus from the embedding distance to the group centroid; the
    range normalization within the group follows the verifiers community implementation.
    """
    return multiplicative_bonus(rewards, range_normalize(centroid_distances(embeddings)), coef)


def knn_bonus(rewards: np.ndarray, novelty: np.ndarray, coef: float) -> np.ndarray:
    """Our variant: s_i = range-normalized archive novelty (mean k-NN distance) of each response."""
    return multiplicative_bonus(rewards, range_normalize(novelty), coef)
