"""ExIt (Exploratory Iteration) for verl, with a Rust prioritized task archive.

Public names are resolved lazily so that ``import exit_verl`` stays cheap and the pure-Python
curriculum can be imported without loading optional heavy dependencies.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS = {
    "TaskArchive": "exit_verl.archive",
    "ExItConfig": "exit_verl.config",
    "ExItCurriculum": "exit_verl.curriculum",
    "Feedback": "exit_verl.curriculum",
    "TaskInstance": "exit_verl.curriculum",
    "History": "exit_verl.history",
    "Turn": "exit_verl.history",
    "evaluate_self_improvement": "exit_verl.evaluation",
}

__all__ = [
    "ExItConfig",
    "ExItCurriculum",
    "Feedback",
    "History",
    "TaskArchive",
    "TaskInstance",
    "Turn",
    "__version__",
    "evaluate_self_improvement",
]

if TYPE_CHECKING:
    from exit_verl.archive import TaskArchive
    from exit_verl.config import ExItConfig
    from exit_verl.curriculum import ExItCurriculum, Feedback, TaskInstance
    from exit_verl.evaluation import evaluate_self_improvement
    from exit_verl.history import History, Turn


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'exit_verl' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
