"""`exit-verl demo domain=tool_use`: BFCL multi-turn tool use with SmolLM2 on CPU.

Which entries: BFCL's `base` category (no withheld functions or parameters), entries with at
most `MAX_TURNS` user turns, each showing only the functions its ground truth calls
(`functions="used"`), the shortest first (characters of the tool schemas and first request).
That keeps a prompt near 500–1100 SmolLM2 tokens (with the tool template), which a 135M model
on two cores can prefill and train on within a CPU step; BFCL's full function lists are 3–8k.
Training entries come from the train split, held-out ones from the test split
(`exit_verl.domains.bfcl`).

verl settings the domain adds: the rows' agent loop ("exit_bfcl", set per row), the ChatML tool
template for SmolLM2 (its own template renders no tools), and whole tool outputs up to
`TOOL_OUTPUT_CHARS`.
"""

from __future__ import annotations

import json
from typing import Any

MAX_TURNS = 2
FUNCTIONS = "used"
TOOL_OUTPUT_CHARS = 256  # verl's default; tool outputs count against the response length
# A fresh `exit-verl demo --domain tool_use` starts from these (any override still wins). On the
# 2-core machine a decoding step of 16 sessions with ~700-token contexts took ~2.4 s and each
# step of K-step validation waits for its longest episode, so episodes get 96 new tokens, steps
# 2 prompts x 4, and the eval 2 held-out entries (prompts of ~500-750 tokens: the shortest).
DEMO_DEFAULTS = {
    "exit": {"preset": "exit", "domain": "tool_use", "min_archive_size": 2},  # Table 5's column
    "prompts_per_step": 2,
    "group_size": 4,
    "micro_batch_size": 4,
    "max_prompt_tokens": 1536,
    "max_new_tokens": 96,
    "train_tasks": 8,
    "eval": {"tasks": 2, "iterations": 4},
}


def short_tasks(split: str, n: int) -> list[dict[str, Any]]:
    """The `n` shortest base entries of `split` with at most MAX_TURNS user turns."""
    from exit_verl.domains import bfcl
    from exit_verl.domains.bfcl.rows import prompt, tools

    candidates = [t for t in bfcl.tasks(split, ["base"]) if len(t["turns"]) <= MAX_TURNS]

    def size(task: dict[str, Any]) -> tuple[int, str]:
        shown = json.dumps(tools(task, FUNCTIONS)) + prompt(task, FUNCTIONS)[1]["content"]
        return len(shown), task["id"]

    chosen = sorted(candidates, key=size)[:n]
    if len(chosen) < n:
        raise ValueError(
            f"the {split} split has {len(candidates)} short BFCL entries, fewer than {n} asked for"
        )
    return chosen


def task_rows(train_tasks: int, heldout_tasks: int) -> dict[str, list[dict[str, Any]]]:
    from exit_verl.domains.bfcl.rows import verl_rows

    return {
        "train": verl_rows(short_tasks("train", train_tasks), FUNCTIONS),
        "heldout": verl_rows(short_tasks("test", heldout_tasks), FUNCTIONS),
    }


def verl_overrides() -> list[str]:
    from exit_verl.verl.tool_chat_template import hydra_override

    return [
        hydra_override(),
        f"actor_rollout_ref.rollout.multi_turn.max_tool_response_length={TOOL_OUTPUT_CHARS}",
    ]
