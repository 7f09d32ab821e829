"""The curriculum's metrics as typed values: a renamed metric fails where it is read.

`CurriculumMetrics` is what `ExItCurriculum.metrics()` returns: the archive's state, and the
metrics of the last `next_batch` (`BatchMetrics`) and `observe` (`ObserveMetrics`) call. It
reads as a mapping of flat names to floats (`m["archive_size"]`, `dict(m)`) for trackers.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field, fields
from functools import cached_property
from typing import Any


@dataclass(frozen=True)
class BatchMetrics:
    """The last `next_batch` call's prompts."""

    replay_fraction: float = 0.0
    diverge_fraction: float = 0.0
    depth_mean: float = 0.0
    depth_max: float = 0.0


@dataclass(frozen=True)
class ObserveMetrics:
    """The last `observe` call's groups."""

    learnability_mean: float = 0.0
    informative_fraction: float = 0.0
    children_added: float = 0.0
    children_rejected: float = 0.0
    reward_mean: float = 0.0
    training_reward_mean: float = 0.0
    advantage_scale_mean: float = 0.0
    bonus_reward_mean: float = 0.0
    bonus_mean: float = 0.0


@dataclass(frozen=True)
class ArchiveMetrics:
    """The archive and the base-task cursor now."""

    archive_size: float = 0.0
    archive_evicted: float = 0.0
    archive_rejected: float = 0.0
    archive_depth_max: float = 0.0
    archive_score_mean: float = 0.0
    archive_distinct: float = 0.0  # different attempt texts among the resident entries
    epoch: float = 0.0


@dataclass(frozen=True)
class CurriculumMetrics(Mapping[str, float]):
    archive: ArchiveMetrics = field(default_factory=ArchiveMetrics)
    batch: BatchMetrics = field(default_factory=BatchMetrics)
    observed: ObserveMetrics = field(default_factory=ObserveMetrics)

    @cached_property
    def _flat(self) -> dict[str, float]:  # built once: the value is frozen
        return {**asdict(self.archive), **asdict(self.batch), **asdict(self.observed)}

    def __getitem__(self, key: str) -> float:
        return self._flat[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._flat)

    def __len__(self) -> int:
        return len(self._flat)


def last_call_metrics(batch: BatchMetrics, observed: ObserveMetrics) -> dict[str, float]:
    """The per-call metrics as saved in a checkpoint (`last_metrics`)."""
    return {**asdict(batch), **asdict(observed)}


def parse_last_call_metrics(value: Any) -> tuple[BatchMetrics, ObserveMetrics]:
    """Inverse of `last_call_metrics`; missing names keep their defaults, unknown names and
    non-numbers raise ValueError."""
    if not isinstance(value, Mapping):
        raise ValueError("curriculum state: 'last_metrics' must be a mapping")
    known = {f.name for cls in (BatchMetrics, ObserveMetrics) for f in fields(cls)}
    unknown = sorted(set(map(str, value)) - known)
    if unknown:
        raise ValueError(f"curriculum state: unknown metric {unknown[0]!r} in 'last_metrics'")
    try:
        numbers = {str(k): float(v) for k, v in value.items()}
    except (TypeError, ValueError):
        raise ValueError("curriculum state: 'last_metrics' must map names to numbers") from None
    return _pick(BatchMetrics, numbers), _pick(ObserveMetrics, numbers)


def _pick(cls: Any, numbers: Mapping[str, float]) -> Any:
    return cls(**{f.name: numbers[f.name] for f in fields(cls) if f.name in numbers})
