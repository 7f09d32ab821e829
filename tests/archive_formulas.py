"""The archive's sampling distribution written out directly from docs/archive.md, for tests."""

from __future__ import annotations

import numpy as np


def expected_probabilities(
    ids: np.ndarray,
    scores: np.ndarray,
    last_steps: np.ndarray,
    step: int,
    prioritization: str,
    temperature: float,
    staleness_coef: float,
) -> np.ndarray:
    n = len(ids)
    if prioritization == "rank":
        order = sorted(range(n), key=lambda i: (-scores[i], ids[i]))
        h = np.empty(n)
        for rank, i in enumerate(order, start=1):
            h[i] = (1.0 / rank) ** (1.0 / temperature)
    elif prioritization == "softmax":
        s = np.asarray(scores, dtype=float)
        h = np.exp((s - s.max()) / temperature)  # shifted by the max: no overflow
    else:
        # (score / max)^(1/T): relative to the top, as softmax is (logs avoid an underflow of
        # score / max itself); all zero is uniform.
        s = np.asarray(scores, dtype=float)
        top = s.max()
        if top == 0:
            h = np.ones(n)
        else:
            with np.errstate(divide="ignore"):
                h = np.exp((np.log(s) - np.log(top)) / temperature)
    p_score = h / h.sum()
    stale = (step - np.asarray(last_steps)).astype(float)
    p_stale = stale / stale.sum() if stale.sum() > 0 else np.full(n, 1.0 / n)
    return (1 - staleness_coef) * p_score + staleness_coef * p_stale


def chi_square_ok(counts: np.ndarray, probs: np.ndarray, quantile: float = 0.999) -> bool:
    from scipy.stats import chi2

    mask = probs > 0
    assert counts[~mask].sum() == 0, "drew an entry with zero probability"
    expected = probs[mask] * counts.sum()
    stat = float(((counts[mask] - expected) ** 2 / expected).sum())
    return stat < chi2.ppf(quantile, df=int(mask.sum()) - 1)
