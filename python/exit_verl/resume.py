"""Parsing and checking a saved curriculum state before any of it is used.

`RestoredState.parse(state, target)` reads `ExItCurriculum.state_dict()` output and checks
that it can continue the curriculum `target` describes (`ResumeTarget`): the same base tasks
(count and fingerprint), an archive built with the same archive-shaping settings (capacity,
sampling law, admission, embedding width), the same `iterate` mode, and well-formed RNG, epoch
and cursor values. Every failure is a ValueError naming what differs; the curriculum assigns
the parsed values only after all of them passed, so a bad state changes nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from exit_verl.archive import TaskArchive
from exit_verl.archive_policy import ArchivePolicy
from exit_verl.config import ExItConfig
from exit_verl.curriculum_metrics import BatchMetrics, ObserveMetrics, parse_last_call_metrics

STATE_VERSION = 3
# Settings a saved archive was built with; resuming with other values would silently keep the
# saved ones, so a mismatch is refused.
ARCHIVE_SHAPING = (
    "capacity",
    "embedding_dim",
    "metric",
    "prioritization",
    "temperature",
    "staleness_coef",
    "admission",
)
STATE_KEYS = frozenset(
    {
        "version",
        "config",
        "seed",
        "num_tasks",
        "tasks_fingerprint",
        "rng",
        "epoch",
        "cursor",
        "last_metrics",
        "archive",
    }
)


@dataclass(frozen=True)
class ResumeTarget:
    """What a saved state must fit: the running curriculum's tasks and settings."""

    num_tasks: int
    tasks_fingerprint: str
    config: ExItConfig
    archive_options: Mapping[str, Any]  # the TaskArchive options its settings give
    policy: ArchivePolicy


@dataclass(frozen=True)
class RestoredState:
    """A saved state checked against a curriculum, ready to assign."""

    seed: int
    archive: TaskArchive
    rng: np.random.Generator
    epoch: int
    cursor: int
    policy: ArchivePolicy  # the running policy over the restored archive
    last_metrics: tuple[BatchMetrics, ObserveMetrics]
    changed_settings: list[str]

    @classmethod
    def parse(cls, state: Mapping[str, Any], target: ResumeTarget) -> RestoredState:
        if not isinstance(state, Mapping):
            raise ValueError("a curriculum state must be a mapping")
        if state.get("version") != STATE_VERSION:
            raise ValueError(
                f"unsupported curriculum state version {state.get('version')!r} "
                f"(this version reads {STATE_VERSION})"
            )
        missing = sorted(STATE_KEYS - {"archive"} - set(state))
        if missing:
            raise ValueError(f"curriculum state lacks {missing}")
        if "archive" not in state:
            raise ValueError("state has no archive bytes (saved with include_archive=False)")
        _check_tasks(state, target)
        saved_config = state["config"]
        if not isinstance(saved_config, Mapping):
            raise ValueError("curriculum state: 'config' must be a mapping")
        iterate = target.config.iterate
        if saved_config.get("iterate") != iterate:
            raise ValueError(
                f"the state was saved with iterate={saved_config.get('iterate')!r}, this run "
                f"has iterate={iterate}: its archive holds other payloads"
            )
        archive = _archive(state["archive"])
        _check_archive_settings(archive, target.archive_options)
        num_tasks = target.num_tasks
        epoch = _count("epoch", state["epoch"], 0)
        cursor = _count("cursor", state["cursor"], 0, num_tasks)
        return cls(
            seed=_count("seed", state["seed"], 0),
            archive=archive,
            rng=_rng(state["rng"]),
            epoch=epoch,
            cursor=cursor,
            policy=target.policy.restored(archive, num_tasks),
            last_metrics=parse_last_call_metrics(state["last_metrics"]),
            changed_settings=_changed(saved_config, target.config.to_dict()),
        )


def _check_tasks(state: Mapping[str, Any], target: ResumeTarget) -> None:
    if state["num_tasks"] != target.num_tasks:
        raise ValueError(
            f"state was saved with {state['num_tasks']} base tasks, this curriculum has "
            f"{target.num_tasks}"
        )
    if state["tasks_fingerprint"] != target.tasks_fingerprint:
        raise ValueError(
            "state was saved with other base tasks (same count, different tasks): the "
            "dataset changed since the checkpoint"
        )


def _check_archive_settings(archive: TaskArchive, wanted: Mapping[str, Any]) -> None:
    saved = archive.config()
    differ = [
        f"{key}: saved {saved[key]!r}, this run {wanted[key]!r}"
        for key in ARCHIVE_SHAPING
        if saved[key] != wanted[key]
    ]
    if differ:
        raise ValueError(
            "the saved archive was built with other settings than this run's; resume with "
            "the saved settings or start a new run. " + "; ".join(differ)
        )


def _changed(saved: Mapping[str, Any], now: Mapping[str, Any]) -> list[str]:
    return [
        f"{key}: {saved.get(key)!r} -> {value!r}"
        for key, value in now.items()
        if key in saved and _plain(saved[key]) != _plain(value)
    ]


def _plain(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def _archive(value: Any) -> TaskArchive:
    """The saved archive: snapshot bytes, or a `TaskArchive` a caller already parsed."""
    if isinstance(value, TaskArchive):
        return value
    if not isinstance(value, (bytes, bytearray, memoryview)):
        raise ValueError("curriculum state: 'archive' must be snapshot bytes")
    return TaskArchive.from_bytes(bytes(value))


def _count(name: str, value: Any, lo: int, hi: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"curriculum state: {name} must be an integer, got {value!r}")
    if value < lo or (hi is not None and value > hi):
        bound = f"[{lo}, {hi}]" if hi is not None else f">= {lo}"
        raise ValueError(f"curriculum state: {name} must be {bound}, got {value}")
    return int(value)


def _rng(value: Any) -> np.random.Generator:
    rng = np.random.default_rng()
    try:
        rng.bit_generator.state = value
    except (TypeError, ValueError, KeyError) as e:
        raise ValueError(f"curriculum state has a malformed RNG state: {e}") from None
    return rng
