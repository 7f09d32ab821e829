"""Group learnability and self-iteration rewards as small pure functions, registered by name.

Learnability functions map one GRPO group's rewards to the score S that prioritizes its
task instance in the archive: `fn(rewards, reward_range) -> float`. Iteration-reward
functions turn a group's rescaled task rewards into its training rewards:
`fn(rescaled, kind, previous_reward) -> array`. Add one with the decorator.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

RewardRange = tuple[float, float]
UNIT_RANGE: RewardRange = (0.0, 1.0)

LearnabilityFn = Callable[..., float]
LEARNABILITY: dict[str, LearnabilityFn] = {}

IterationRewardFn = Callable[[np.ndarray, str, "float | None"], np.ndarray]
ITERATION_REWARDS: dict[str, IterationRewardFn] = {}


def register_learnability(name: str) -> Callable[[LearnabilityFn], LearnabilityFn]:
    def wrap(fn: LearnabilityFn) -> LearnabilityFn:
        LEARNABILITY[name] = fn
        return fn

    return wrap


def register_iteration_reward(name: str) -> Callable[[IterationRewardFn], IterationRewardFn]:
    def wrap(fn: IterationRewardFn) -> IterationRewardFn:
        ITERATION_REWARDS[name] = fn
        return fn

    return wrap


def check_reward_range(reward_range: RewardRange) -> tuple[float, float]:
    """(lo, hi) as floats; ValueError unless both are finite and lo < hi."""
    try:
        lo, hi = (float(x) for x in reward_range)
    except (TypeError, ValueError):
        raise ValueError(f"reward_range must be a pair (lo, hi), got {reward_range!r}") from None
    if not (np.isfinite(lo) and np.isfinite(hi) and lo < hi):
        raise ValueError(f"reward_range must be finite with lo < hi, got {reward_range!r}")
    return lo, hi


def rescale(rewards: np.ndarray, reward_range: RewardRange = UNIT_RANGE) -> np.ndarray:
    """(r − lo) / (hi − lo): the fixed range maps to [0, 1] (values outside it stay outside)."""
    lo, hi = check_reward_range(reward_range)
    r = np.asarray(rewards, dtype=np.float64)
    if (lo, hi) == UNIT_RANGE:
        return r.copy()  # exactly the task rewards
    return (r - lo) / (hi - lo)


def quality(rewards: np.ndarray, reward_range: RewardRange = UNIT_RANGE) -> np.ndarray:
    """Rewards rescaled by the fixed range and clipped to [0, 1] (the paper's quality measure)."""
    return np.clip(rescale(rewards, reward_range), 0.0, 1.0)


# -- learnability -------------------------------------------------------------------------


@register_learnability("variance")
def fixed_range_variance(rewards: np.ndarray, reward_range: RewardRange = UNIT_RANGE) -> float:
    """The paper's S (§4.1): population variance of the rewards rescaled to [0, 1].

    The range is fixed (not the group's own min and max), so [0.50, 0.51] scores 2.5e-5,
    not the maximum 0.25; 0/1 rewards of a group of 8 give S in {0, 7, 12, 15, 16}/64.
    """
    return float(np.var(quality(rewards, reward_range)))


@register_learnability("minmax_variance")
def minmax_variance(rewards: np.ndarray, reward_range: RewardRange = UNIT_RANGE) -> float:
    """Variance of the group's rewards min-max normalized within the group (scale-free).

    Any spread, however small, becomes the full [0, 1]; a group without spread scores 0.
    """
    r = np.asarray(rewards, dtype=np.float64)
    span = r.max() - r.min()
    if span <= 1e-12:
        return 0.0
    return float(np.var((r - r.min()) / span))


@register_learnability("raw_variance")
def raw_variance(rewards: np.ndarray, reward_range: RewardRange = UNIT_RANGE) -> float:
    """Variance of the rewards as given (scale-dependent; the range is ignored)."""
    return float(np.var(np.asarray(rewards, dtype=np.float64)))


@register_learnability("binary")
def success_variance(rewards: np.ndarray, reward_range: RewardRange = UNIT_RANGE) -> float:
    """p(1 − p), p = the share of rescaled rewards above 0.5 (PLR-style for 0/1 rewards)."""
    p = float(np.mean(rescale(rewards, reward_range) > 0.5))
    return p * (1.0 - p)


# -- self-iteration rewards ---------------------------------------------------------------


@register_iteration_reward("raw")
def raw_reward(rescaled: np.ndarray, kind: str, previous_reward: float | None) -> np.ndarray:
    """Every step is trained on its rescaled task reward (the paper's math and tool use)."""
    return np.asarray(rescaled, dtype=np.float64).copy()


@register_iteration_reward("improvement")
def improvement_reward(
    rescaled: np.ndarray, kind: str, previous_reward: float | None
) -> np.ndarray:
    """max(0, (r − r_prev) / (1 − r_prev)) for improve steps (paper App. A.4).

    r is the quality (rescaled, clipped to [0, 1]) and r_prev the improved attempt's. With
    r_prev = 1 nothing can improve: 1 for a response that keeps the maximum, else 0. Base
    and diverge steps, and attempts whose reward is unknown, keep the rescaled reward.
    """
    r = np.asarray(rescaled, dtype=np.float64)
    if kind != "improve" or previous_reward is None:
        return r.copy()
    q = np.clip(r, 0.0, 1.0)
    if previous_reward >= 1.0:
        return (q >= 1.0).astype(np.float64)
    return np.maximum(0.0, (q - previous_reward) / (1.0 - previous_reward))
