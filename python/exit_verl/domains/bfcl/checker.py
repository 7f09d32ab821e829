"""BFCL's multi-turn checker on our `Env`: the whole episode is right (1.0) or wrong (0.0).

The driver loop is bfcl-eval's `multi_turn_checker` (eval_checker/multi_turn_eval), with its
executor (which `eval`s call strings into instances kept in module globals) replaced by two
fresh `Env`s: one runs the model's calls, one the ground truth, turn by turn. After each turn
whose ground truth is not empty, the model must have made at least one call in the turn, and
bfcl-eval's own `state_checker` (public attributes of every instance equal) and
`response_checker` (every ground-truth output of the turn among the model's outputs so far)
must pass. Turns with an empty ground truth (the model should ask or decline) are run but not
checked, as in bfcl-eval. A call list with fewer or more turns than the task is an episode that
was cut short (BFCL's force-terminated entry): wrong.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from exit_verl.domains.bfcl.env import Env


def _check_calls(calls: Any) -> list[list[str]]:
    if isinstance(calls, str) or not isinstance(calls, Sequence):
        raise ValueError("calls must be a list (one per user turn) of lists of call strings")
    out = []
    for turn in calls:
        if isinstance(turn, str) or not isinstance(turn, Sequence):
            raise ValueError("each turn's calls must be a list of call strings")
        if not all(isinstance(c, str) for c in turn):
            raise ValueError("calls must be strings")
        out.append(list(turn))
    return out


def check(task: Mapping[str, Any], calls: Sequence[Sequence[str]]) -> dict[str, Any]:
    """BFCL's verdict: {"valid": bool, ...} with its error type and message when invalid."""
    from bfcl_eval.eval_checker.multi_turn_eval.multi_turn_checker import (
        response_checker,
        state_checker,
    )

    turns = _check_calls(calls)
    truth = task["ground_truth"]
    if len(turns) != len(truth):
        return {
            "valid": False,
            "error_type": "multi_turn:force_terminated",
            "error_message": f"{len(turns)} turns of calls for {len(truth)} user turns",
        }
    model, reference = Env(task), Env(task)
    model_outputs: list[str] = []
    for index, (made, expected) in enumerate(zip(turns, truth, strict=True)):
        model_outputs.extend(model.call(c) for c in made)
        expected_outputs = [reference.call(c) for c in expected]
        if not expected:
            continue
        if not made:
            return {
                "valid": False,
                "error_type": "multi_turn:empty_turn_model_response",
                "error_message": f"Model response list is empty for turn {index}",
            }
        verdict = state_checker(model._instances, reference._instances)
        if not verdict["valid"]:
            return verdict
        verdict = response_checker(model_outputs, expected_outputs, index)
        if not verdict["valid"]:
            return verdict
    return {"valid": True}


def score(task: Mapping[str, Any], calls: Sequence[Sequence[str]]) -> float:
    """1.0 when BFCL's checker accepts the episode's calls (per user turn), else 0.0."""
    return 1.0 if check(task, calls)["valid"] else 0.0
