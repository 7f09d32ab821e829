"""A task instance saved as plain state (a prompt in flight at a checkpoint) and rebuilt by
`ExItCurriculum.restore_instance`: the same prompt, kind, history and previous attempt."""

from __future__ import annotations

import json

import numpy as np
import pytest

from exit_verl import ExItConfig, ExItCurriculum, Turn

TASKS = [{"prompt": f"What is {i} + {i}?", "answer": 2 * i} for i in range(6)]


def grown(**overrides) -> tuple[ExItCurriculum, list]:
    cfg = ExItConfig(
        **{"min_archive_size": 1, "p_replay": 0.7, "diversity_bonus": "none", **overrides}
    )
    cur = ExItCurriculum(cfg, TASKS, seed=5)
    instances = []
    for step in range(4):
        batch = cur.next_batch(6, step)
        instances += batch
        rewards = np.random.default_rng(step).integers(0, 2, size=(6, 3)).astype(float)
        responses = [[f"attempt {step}-{i}-{j}" for j in range(3)] for i in range(6)]
        cur.observe(batch, responses, rewards, step)
    return cur, instances


def test_every_kind_of_instance_round_trips_through_json() -> None:
    cur, instances = grown()
    assert {inst.kind for inst in instances} == {"base", "improve", "diverge"}
    for inst in instances:
        state = json.loads(json.dumps(inst.state()))
        again = cur.restore_instance(state)
        for name in ("prompt", "base_index", "archive_id", "kind", "depth", "answer"):
            assert getattr(again, name) == getattr(inst, name), name
        assert again.history == inst.history
        assert again.previous_attempt == inst.previous_attempt
        assert again.previous_reward == inst.previous_reward


def test_a_multi_turn_cut_with_tool_messages_survives() -> None:
    cur = ExItCurriculum(
        ExItConfig(min_archive_size=1, p_replay=1.0, diversity_bonus="none"), TASKS, seed=1
    )
    (inst,) = cur.next_batch(1, 0)
    call = {"type": "function", "function": {"name": "ls", "arguments": {"a": 1}}}
    tool_turn = (
        {"role": "assistant", "content": "", "tool_calls": [call]},
        {"role": "tool", "content": "x.txt"},
    )
    turns = [Turn(None, "a"), Turn("obs 1", "b", messages=tool_turn), Turn("obs 2", "c")]
    cur.observe([inst], [[turns, turns]], np.array([[1.0, 0.0]]), 0)
    replays = [i for i in cur.next_batch(8, 1) if i.history is not None]
    assert any(t.messages for i in replays for t in i.history.turns)
    for inst in replays:
        again = cur.restore_instance(json.loads(json.dumps(inst.state())))
        assert again.prompt == inst.prompt and again.history == inst.history


@pytest.mark.parametrize(
    "change",
    [
        {"base_index": 99},
        {"base_index": True},
        {"kind": "rewrite"},
        {"depth": -1},
        {"archive_id": "3"},
        {"history": "not json"},
        {"extra": []},
        {"unexpected": 1},
    ],
)
def test_malformed_states_are_refused(change) -> None:
    cur, instances = grown()
    state = {**next(i for i in instances if i.history is not None).state(), **change}
    with pytest.raises(ValueError):
        cur.restore_instance(state)
