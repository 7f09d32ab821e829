"""The grader: a submission file against a competition's hidden answers, outside the sandbox.

The submission is untrusted input: its size is checked before it is read, it is parsed as CSV
text (every cell a string), and anything malformed — missing columns, missing, duplicate or
unknown ids, empty or non-numeric targets — raises `SubmissionError` with a message short
enough to show the policy.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from exit_verl.domains.mle.metrics import Metric


class SubmissionError(ValueError):
    """A submission that cannot be scored; the message says why."""


@dataclass(frozen=True)
class Answers:
    """Hidden test targets, in a fixed id order (ids as text)."""

    ids: tuple[str, ...]
    targets: np.ndarray

    def __post_init__(self) -> None:
        if len(self.ids) != len(self.targets) or not self.ids:
            raise ValueError("answers need one target per id and at least one id")
        if len(set(self.ids)) != len(self.ids):
            raise ValueError("answers hold duplicate ids")


def read_csv_file(path: Path, max_bytes: int):
    """A CSV file as a DataFrame of strings; ValueError if too large or unreadable."""
    size = path.stat().st_size
    if size > max_bytes:
        raise ValueError(f"{path} is {size} bytes, more than the {max_bytes} allowed")
    return read_csv_text(path.read_bytes(), path.name, max_bytes)


def read_csv_text(data: bytes, name: str, max_bytes: int):
    """CSV bytes as a DataFrame of strings; SubmissionError if too large or unreadable."""
    import io

    import pandas as pd

    if len(data) > max_bytes:
        raise SubmissionError(f"{name} is larger than the {max_bytes} bytes allowed")
    try:
        return pd.read_csv(
            io.BytesIO(data), dtype=str, keep_default_na=False, skipinitialspace=True
        )
    except (ValueError, UnicodeDecodeError) as e:  # pandas' parser errors are ValueErrors
        raise SubmissionError(f"{name} is not a readable CSV file: {e}") from None


def predictions(
    frame, answers: Answers, id_column: str, target_column: str, kind: str
) -> np.ndarray:
    """The submission's targets in the answers' id order, parsed for the metric's kind."""
    frame.columns = [str(c).strip() for c in frame.columns]
    missing = [c for c in (id_column, target_column) if c not in frame.columns]
    if missing:
        raise SubmissionError(
            f"submission.csv lacks column(s) {missing}; it has {list(frame.columns)[:10]}"
        )
    ids = [str(v).strip() for v in frame[id_column]]
    values = [str(v).strip() for v in frame[target_column]]
    by_id = dict(zip(ids, values, strict=True))
    if len(by_id) != len(ids):
        raise SubmissionError("submission.csv repeats some ids")
    wanted = set(answers.ids)
    lacking = [i for i in answers.ids if i not in by_id]
    if lacking:
        raise SubmissionError(
            f"submission.csv lacks {len(lacking)} of the {len(answers.ids)} test ids "
            f"(e.g. {lacking[:3]})"
        )
    extra = [i for i in ids if i not in wanted]
    if extra:
        raise SubmissionError(f"submission.csv has {len(extra)} ids not in test.csv: {extra[:3]}")
    ordered = [by_id[i] for i in answers.ids]
    empty = [i for i, v in zip(answers.ids, ordered, strict=True) if v == ""]
    if empty:
        raise SubmissionError(f"submission.csv has no {target_column} for ids {empty[:3]}")
    if kind == "number" or (kind == "label" and _numeric(answers.targets)):
        numbers = _floats(ordered)
        if numbers is None:
            if kind == "number":
                raise SubmissionError(f"{target_column} must hold finite numbers")
            return np.array(ordered, dtype=object)  # labels that are not numbers: all wrong
        return numbers
    return np.array(ordered, dtype=object)


def score(metric: Metric, answers: Answers, predicted: np.ndarray) -> float:
    truth = answers.targets
    if metric.kind == "label" and predicted.dtype == object:
        truth = np.array([_label_text(t) for t in truth], dtype=object)
    try:
        return metric(truth, predicted)
    except ValueError as e:
        raise SubmissionError(f"{metric.name} cannot be computed: {e}") from None


def _numeric(values: np.ndarray) -> bool:
    return values.dtype.kind in "biuf"


def _floats(texts: list[str]) -> np.ndarray | None:
    try:
        out = np.array([float(t) for t in texts], dtype=np.float64)
    except ValueError:
        return None
    return out if all(math.isfinite(v) for v in out) else None


def _label_text(value: object) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()
