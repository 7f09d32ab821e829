"""Multi-turn histories (paper §4) on a synthetic three-turn task: inserting a history
inserts each per-turn partial history, and selection continues from a random turn prefix."""

from __future__ import annotations

from collections import Counter

import numpy as np
from scipy.stats import chisquare

from exit_verl import ExItConfig, ExItCurriculum, History, Turn

# A synthetic tool-use-like task: the environment answers each turn with an observation.
TASKS = [{"prompt": "Find x, then y, then report x + y.", "answer": 7}]


def episode(tag: str) -> list[Turn]:
    """One rollout of three turns (only the last is scored by the task reward)."""
    return [
        Turn(None, f"{tag}: look up x", 0.0),
        Turn("x = 3", f"{tag}: look up y"),
        Turn("y = 4", f"{tag}: x + y = 7"),
    ]


def make(**overrides) -> ExItCurriculum:
    cfg = ExItConfig(
        **{"min_archive_size": 1, "p_replay": 1.0, "diversity_bonus": "none", **overrides}
    )
    return ExItCurriculum(cfg, TASKS, seed=3)


def test_inserting_a_history_inserts_every_turn_prefix() -> None:
    cur = make()
    (inst,) = cur.next_batch(1, 0)
    cur.observe([inst], [[episode("a"), episode("b")]], np.array([[1.0, 0.0]]), 0)
    ids = cur.archive.ids().tolist()
    assert ids == [0, 1, 2]  # one child (a rollout of 3 turns) → 3 partial histories
    histories = [History.from_bytes(p) for p in cur.archive.get(ids)]
    assert [len(h.turns) for h in histories] == [1, 2, 3]
    full = histories[-1]
    assert [h.turns for h in histories] == [full.turns[:1], full.turns[:2], full.turns]
    tag = full.turns[0].response.split(":")[0]
    assert full.reward == {"a": 1.0, "b": 0.0}[tag]  # the rollout's final reward
    assert histories[0].reward == 0.0 and histories[1].reward is None  # per-turn, when known
    info, lineage = cur.archive.info(ids), cur.archive.lineage(ids)
    assert info["score"].tolist() == [0.25] * 3 and lineage["parent"].tolist() == [-1] * 3


def test_selection_cuts_a_uniform_random_turn_prefix() -> None:
    cur = make(children_per_group=1)
    (inst,) = cur.next_batch(1, 0)
    cur.observe([inst], [[episode("a"), episode("b")]], np.array([[1.0, 0.0]]), 0)
    cur.archive.remove([0, 1])  # keep only the full three-turn history
    batch = cur.next_batch(600, 1)
    lengths = Counter(len(b.history.turns) for b in batch)
    assert set(lengths) == {1, 2, 3}
    assert chisquare([lengths[1], lengths[2], lengths[3]]).pvalue > 1e-4
    for b in batch:
        turns = b.history.turns
        assert b.archive_id == 2 and b.previous_attempt == turns[-1].response
        messages = b.prompt
        # Earlier turns are replayed as messages; the request is the latest observation.
        assert [m["content"] for m in messages if m["role"] == "assistant"] == [
            t.response for t in turns[:-1]
        ]
        request = turns[-1].observation or TASKS[0]["prompt"]
        assert f"## Request\n{request}" in messages[-1]["content"]
        assert b.render(cur.templates) == messages


def test_a_replayed_prefix_grows_by_its_new_iterate_and_later_turns() -> None:
    cur = make(children_per_group=1)
    (inst,) = cur.next_batch(1, 0)
    cur.observe([inst], [[episode("a"), episode("a")]], np.array([[1.0, 0.0]]), 0)
    cur.archive.remove([0, 1])
    step = 1
    while True:  # draw until the cut keeps two turns
        (replay,) = cur.next_batch(1, step)
        if len(replay.history.turns) == 2:
            break
        step += 1
    parent = replay.history
    rollout = [Turn(None, "c: look up y again"), Turn("y = 4", "c: x + y = 7")]
    cur.observe([replay], [[rollout, rollout]], np.array([[1.0, 1.0]]), step)
    new = [i for i in cur.archive.ids().tolist() if i > 2]
    histories = [History.from_bytes(p) for p in cur.archive.get(new)]
    # The new content starts at turn 2: partial histories of 2 and 3 turns are inserted.
    assert [len(h.turns) for h in histories] == [2, 3]
    child = histories[-1]
    assert child.turns[0] == parent.turns[0]  # the context is kept
    assert child.turns[1] == Turn(parent.turns[1].observation, "c: look up y again")
    assert child.turns[2] == Turn("y = 4", "c: x + y = 7", 1.0)
    assert child.kind == replay.kind
    assert cur.archive.lineage(new)["parent"].tolist() == [2, 2]


def test_an_episodes_feedback_is_kept_on_its_last_turn() -> None:
    cur = make()
    (inst,) = cur.next_batch(1, 0)
    notes = [["checker: the second call was wrong", None]]
    cur.observe([inst], [[episode("a"), episode("b")]], np.array([[0.0, 1.0]]), 0, feedback=notes)
    full = [
        h for h in map(History.from_bytes, cur.archive.get(cur.archive.ids())) if len(h.turns) == 3
    ]
    by_tag = {h.turns[-1].response[0]: h for h in full}
    assert by_tag["a"].turns[-1].feedback == "checker: the second call was wrong"
    assert [t.feedback for t in by_tag["a"].turns[:-1]] == [None, None]
