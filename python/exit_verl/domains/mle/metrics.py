"""Competition metrics, registered by name, and the normalization of a metric to [0, 1].

A metric maps (true targets, predicted targets) to one number. `kind` says how a submission's
target column is read: "label" (class labels, compared as numbers when both sides are numbers,
else as text), "number" (finite floats: regression values or probability scores). `constant`
gives the trivial constant prediction from the training targets (the majority class, the mean,
the median, 0.5 for a ranking metric): what it scores is a competition's fixed worst value.
`normalize` maps a metric value to [0, 1] by the competition's fixed worst (what a trivial
constant submission scores) and best values, as MLE-bench's fixed per-competition ranges do;
it works for lower-is-better metrics (best < worst) too.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

MetricFn = Callable[[np.ndarray, np.ndarray], float]
ConstantFn = Callable[[np.ndarray], object]
KINDS = ("label", "number")


@dataclass(frozen=True)
class Metric:
    name: str
    fn: MetricFn
    higher_is_better: bool
    ideal: float  # the best value the metric can take (the default `best` of a competition)
    kind: str
    constant: ConstantFn

    def __call__(self, y_true: np.ndarray, y_pred: np.ndarray) -> float:
        value = float(self.fn(y_true, y_pred))
        if not math.isfinite(value):
            raise ValueError(f"metric {self.name} is not finite on this submission")
        return value


METRICS: dict[str, Metric] = {}


def register_metric(
    name: str,
    fn: MetricFn,
    *,
    higher_is_better: bool,
    ideal: float,
    kind: str = "number",
    constant: ConstantFn | None = None,
) -> Metric:
    """Adds a metric a competition's task.json can name."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    default = _majority if kind == "label" else _mean
    metric = Metric(name, fn, higher_is_better, float(ideal), kind, constant or default)
    METRICS[name] = metric
    return metric


def get_metric(name: str) -> Metric:
    if name not in METRICS:
        raise ValueError(f"unknown metric {name!r}; known: {sorted(METRICS)}")
    return METRICS[name]


def normalize(value: float, worst: float, best: float) -> float:
    """(value − worst) / (best − worst), clipped to [0, 1]."""
    if not (math.isfinite(worst) and math.isfinite(best)) or worst == best:
        raise ValueError(f"worst and best must be finite and differ, got {worst}, {best}")
    return float(min(1.0, max(0.0, (value - worst) / (best - worst))))


def _majority(y: np.ndarray) -> object:
    values, counts = np.unique(y, return_counts=True)
    return values[int(np.argmax(counts))]  # ties: the smallest label


def _mean(y: np.ndarray) -> float:
    return float(np.mean(y.astype(float)))


def _median(y: np.ndarray) -> float:
    return float(np.median(y.astype(float)))


def _accuracy(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    return float(np.mean(y_true == y_pred))


def _rmse(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    return float(np.sqrt(np.mean((y_true.astype(float) - y_pred.astype(float)) ** 2)))


def _mae(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    return float(np.mean(np.abs(y_true.astype(float) - y_pred.astype(float))))


def _roc_auc(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(y_true.astype(float), y_pred.astype(float)))


register_metric("accuracy", _accuracy, higher_is_better=True, ideal=1.0, kind="label")
register_metric("roc_auc", _roc_auc, higher_is_better=True, ideal=1.0, constant=lambda y: 0.5)
register_metric("rmse", _rmse, higher_is_better=False, ideal=0.0)
register_metric("mae", _mae, higher_is_better=False, ideal=0.0, constant=_median)
