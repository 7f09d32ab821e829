"""Multi-turn tool use on BFCL v3's multi-turn entries (docs/tool_use.md).

Data, function docs, executable API classes and the multi-turn checker come from the PyPI
package `bfcl-eval`, installed `--no-deps` (its pinned SDKs are not needed; only modules that
import without them are used):

    tasks("train") / tasks("test")    a fixed split by scenario index (`data.py`)
    Env(task)                         fresh instances of the task's classes; `call(text)` runs ONE
                                      call parsed with `ast`, `state()` snapshots them (`env.py`)
    score(task, calls)                BFCL's multi-turn checker, 1.0 / 0.0 (`checker.py`)

Model output never reaches `eval`: bfcl-eval's own executor (which `eval`s call strings and
keeps instances in module globals) is not used.
"""

from exit_verl.domains.bfcl.checker import score
from exit_verl.domains.bfcl.data import CATEGORIES, SPLITS, max_steps, task, tasks
from exit_verl.domains.bfcl.env import Env, call_text, parse_call

__all__ = [
    "CATEGORIES",
    "SPLITS",
    "Env",
    "call_text",
    "max_steps",
    "parse_call",
    "score",
    "task",
    "tasks",
]
