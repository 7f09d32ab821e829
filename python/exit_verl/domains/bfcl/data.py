"""BFCL's multi-turn entries as task dicts, with a fixed train/test split.

bfcl-eval ships 800 multi-turn entries: 200 scenarios (index 0..199) in four categories —
`base`, `miss_func` (a function is withheld until a later turn), `miss_param` (a request lacks
a parameter; the model should ask) and `long_context` (large environments). Entry i of every
category is a variant of scenario i (same classes, mostly the same initial state), so the split
is by scenario index: **test = the scenarios whose index is a multiple of 5** (40 per category,
160 entries), **train = the other 160 scenarios** (640 entries). No scenario is in both.

A task is a plain JSON-able dict:
  id                 BFCL's entry id, e.g. "multi_turn_base_12"
  category           one of CATEGORIES
  turns              per user turn, its user messages (a withheld-function turn carries BFCL's
                     "I have updated some more functions ..." message)
  involved_classes   names of the API classes the episode runs
  initial_config     per class, the scenario state it loads
  functions          OpenAI-style tool schemas available from the first turn
  added_functions    per turn, the schemas that become available at that turn (miss_func)
  ground_truth       per turn, BFCL's ground-truth call strings
  path               the functions the ground truth uses (BFCL's "path")
  long_context       whether the classes load their long-context variant

Function docs are BFCL's (its classes' JSON docs, with the Python-syntax hint BFCL adds to every
multi-turn description), converted to JSON Schema types with bfcl-eval's own type table.
"""

from __future__ import annotations

import functools
import json
from importlib import resources
from typing import Any

CATEGORIES = ("base", "miss_func", "miss_param", "long_context")
SPLITS = ("train", "test")
TEST_EVERY = 5  # scenario i is held out iff i % TEST_EVERY == 0
_HINT = " Note that the provided function is in Python 3 syntax."  # BFCL's multi-turn hint


def _bfcl():
    """bfcl-eval's constant modules (they import without its pinned SDKs)."""
    try:
        from bfcl_eval.constants import category_mapping, default_prompts, type_mappings
        from bfcl_eval.constants import executable_backend_config as backend
    except ImportError as e:
        raise RuntimeError(
            f"the tool-use domain needs bfcl-eval: pip install --no-deps bfcl-eval ({e})"
        ) from None
    return category_mapping, default_prompts, type_mappings, backend


def max_steps() -> int:
    """At most this many model steps with calls per user turn; one more ends the episode
    (bfcl-eval's MAXIMUM_STEP_LIMIT: its inference loop force-quits and the entry fails)."""
    return int(_bfcl()[1].MAXIMUM_STEP_LIMIT)


def _lines(path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _data_dir():
    _bfcl()
    return resources.files("bfcl_eval") / "data"


@functools.cache
def _docs(class_name: str) -> tuple[dict[str, Any], ...]:
    backend = _bfcl()[3]
    if class_name not in backend.MULTI_TURN_FUNC_DOC_FILE_MAPPING:
        raise ValueError(f"bfcl-eval has no function docs for class {class_name!r}")
    file = backend.MULTI_TURN_FUNC_DOC_FILE_MAPPING[class_name]
    return tuple(_lines(_data_dir() / "multi_turn_func_doc" / file))


def _json_type(value: dict[str, Any], mapping: dict[str, str]) -> dict[str, Any]:
    """One BFCL parameter schema in JSON Schema types (BFCL's OpenAI conversion)."""
    out = dict(value)
    kind = out.get("type", "string")
    if kind == "float":  # as bfcl-eval's converter marks floats
        out["format"] = "float"
        out["description"] = out.get("description", "") + " This is a float type value."
    out["type"] = mapping.get(kind, "string")
    if isinstance(out.get("properties"), dict):
        out["properties"] = {k: _json_type(v, mapping) for k, v in out["properties"].items()}
    if isinstance(out.get("items"), dict):
        out["items"] = _json_type(out["items"], mapping)
    return out


def tool_schema(doc: dict[str, Any]) -> dict[str, Any]:
    """A BFCL function doc as an OpenAI-style tool schema (chat templates render these)."""
    mapping = _bfcl()[2].GORILLA_TO_OPENAPI
    parameters = dict(doc.get("parameters") or {})
    properties = parameters.get("properties") or {}
    parameters["type"] = "object"
    parameters["properties"] = {k: _json_type(v, mapping) for k, v in properties.items()}
    function = {
        "name": doc["name"],
        "description": doc.get("description", "") + _HINT,
        "parameters": parameters,
    }
    return {"type": "function", "function": function}


@functools.cache
def _category(category: str) -> tuple[str, ...]:
    """The category's entries as JSON texts (parsed per call: callers get their own copies)."""
    if category not in CATEGORIES:
        raise ValueError(f"unknown BFCL multi-turn category {category!r}; known: {CATEGORIES}")
    prefix = _bfcl()[0].VERSION_PREFIX
    name = f"{prefix}_multi_turn_{category}.json"
    entries = _lines(_data_dir() / name)
    answers = {a["id"]: a["ground_truth"] for a in _lines(_data_dir() / "possible_answer" / name)}
    return tuple(json.dumps(_task(e, answers[e["id"]], category)) for e in entries)


def _task(entry: dict[str, Any], ground_truth: list[list[str]], category: str) -> dict[str, Any]:
    holdout = {int(k): set(v) for k, v in (entry.get("missed_function") or {}).items()}
    withheld = set().union(*holdout.values()) if holdout else set()
    docs = [d for c in entry["involved_classes"] for d in _docs(c)]
    added: list[list[dict[str, Any]]] = [[] for _ in entry["question"]]
    for turn, names in holdout.items():
        added[turn] = [tool_schema(d) for d in docs if d["name"] in names]
    update = _bfcl()[1].DEFAULT_USER_PROMPT_FOR_ADDITIONAL_FUNCTION_FC
    turns = [
        list(messages) if messages or i not in holdout else [{"role": "user", "content": update}]
        for i, messages in enumerate(entry["question"])
    ]
    if len(ground_truth) != len(turns):
        raise ValueError(f"{entry['id']}: {len(turns)} turns but {len(ground_truth)} answers")
    return {
        "id": entry["id"],
        "category": category,
        "turns": turns,
        "involved_classes": list(entry["involved_classes"]),
        "initial_config": entry.get("initial_config", {}),
        "functions": [tool_schema(d) for d in docs if d["name"] not in withheld],
        "added_functions": added,
        "ground_truth": [list(calls) for calls in ground_truth],
        "path": list(entry.get("path", [])),
        "long_context": category == "long_context",
    }


def scenario_index(task_id: str) -> int:
    """The scenario index of an entry id ("multi_turn_miss_func_12" -> 12)."""
    head, _, index = task_id.rpartition("_")
    if not head.startswith("multi_turn_") or not index.isdigit():
        raise ValueError(f"not a BFCL multi-turn entry id: {task_id!r}")
    return int(index)


def split_of(task_id: str) -> str:
    return "test" if scenario_index(task_id) % TEST_EVERY == 0 else "train"


def tasks(split: str, categories: tuple[str, ...] | list[str] = CATEGORIES) -> list[dict[str, Any]]:
    """The split's tasks, in category order then BFCL's entry order (a fresh copy per call)."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    out = []
    for category in categories:
        for text in _category(category):
            entry = json.loads(text)
            if split_of(entry["id"]) == split:
                out.append(entry)
    return out


def task(task_id: str) -> dict[str, Any]:
    """One entry by BFCL id (KeyError if it does not exist)."""
    index = scenario_index(task_id)
    category = task_id[len("multi_turn_") : -(len(str(index)) + 1)]
    if category not in CATEGORIES:
        raise KeyError(f"no BFCL multi-turn entry {task_id!r}")
    for text in _category(category):
        entry = json.loads(text)
        if entry["id"] == task_id:
            return entry
    raise KeyError(f"no BFCL multi-turn entry {task_id!r}")
