"""BFCL tasks as verl dataset rows, and what an episode shows the model.

A row is what verl's `RLHFDataset` reads, plus what the tool-use agent loop needs:
  prompt           [system message, the first turn's request]; later requests come from the task
  agent_name       the agent loop that runs the episode (`AGENT_NAME`)
  reward_model     ground_truth: the ground-truth calls as JSON (the agent loop scores the episode)
  extra_info       index, bfcl_id (the entry the agent loop loads from bfcl-eval),
                   functions ("all" or "used"), tools (the visible tool schemas, JSON) and
                   overlong_filter (an episode cut by the response length gets loss mask 0,
                   DAPO's overlong filtering, which the paper's tool-use runs use)

`functions="all"` shows every function of the task's classes (BFCL's setting); `"used"` only
those the ground truth calls (BFCL's per-entry `path`), for models whose context cannot hold
all of them. Functions a miss_func entry withholds are announced in the user message of the turn
that adds them (their schemas as JSON before BFCL's "I have updated some more functions"
message), so the conversation only ever grows.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

AGENT_NAME = "exit_bfcl"
DATA_SOURCE = "bfcl/multi_turn"
FUNCTION_CHOICES = ("all", "used")
SYSTEM_PROMPT = (
    "You are an expert in composing functions. You are given a request and a set of possible "
    "functions. Call the functions needed to fulfil the request, as many steps as it takes, "
    "then answer without a call. If none of the functions can be used, or the request lacks a "
    "parameter a function needs, say so instead of calling. Calls only affect the environment "
    "through their effects; each user turn is a new request in the same environment."
)


def _names(task: Mapping[str, Any], functions: str) -> set[str] | None:
    if functions not in FUNCTION_CHOICES:
        raise ValueError(f"functions must be one of {FUNCTION_CHOICES}, got {functions!r}")
    if functions == "all":
        return None
    return {name.rsplit(".", 1)[-1] for name in task["path"]}


def _visible(schemas: Sequence[Mapping[str, Any]], names: set[str] | None) -> list[dict]:
    return [dict(s) for s in schemas if names is None or s["function"]["name"] in names]


def tools(task: Mapping[str, Any], functions: str = "all") -> list[dict[str, Any]]:
    """The tool schemas shown from the first turn on."""
    return _visible(task["functions"], _names(task, functions))


def request(task: Mapping[str, Any], turn: int, functions: str = "all") -> str:
    """The user message of `turn` (its messages' text; added functions' schemas first)."""
    text = "\n\n".join(str(m.get("content", "")) for m in task["turns"][turn])
    added = _visible(task["added_functions"][turn], _names(task, functions))
    if added:
        text = json.dumps(added, ensure_ascii=False) + "\n" + text
    return text


def prompt(task: Mapping[str, Any], functions: str = "all") -> list[dict[str, str]]:
    return [
        {"role": "system", "content": SYSTEM_PROMPT},
        {"role": "user", "content": request(task, 0, functions)},
    ]


def verl_rows(
    tasks: Sequence[Mapping[str, Any]], functions: str = "all", overlong_filter: bool = False
) -> list[dict[str, Any]]:
    """verl dataset rows for `tasks` (in order; `extra_info.index` is the position)."""
    return [
        {
            "data_source": DATA_SOURCE,
            "agent_name": AGENT_NAME,
            "prompt": prompt(task, functions),
            "ability": "tool_use",
            "reward_model": {"style": "rule", "ground_truth": json.dumps(task["ground_truth"])},
            "extra_info": {
                "index": i,
                "bfcl_id": task["id"],
                "functions": functions,
                "tools": json.dumps(tools(task, functions), ensure_ascii=False),
                "overlong_filter": bool(overlong_filter),
            },
        }
        for i, task in enumerate(tasks)
    ]
