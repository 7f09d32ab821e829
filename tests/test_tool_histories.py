"""Structured tool-use turns: stored format, prompts, and the curriculum on them (no verl)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from exit_verl import ExItConfig, ExItCurriculum, History, Turn
from exit_verl.history import turns_from_json, turns_to_json
from exit_verl.prompts import templates_for
from exit_verl.tool_prompts import RESTORED_NOTE, render_tool_iteration

TASK = [
    {"role": "system", "content": "Use the tools."},
    {"role": "user", "content": "Go to docs and list it."},
]


def call(name: str, **arguments) -> dict:
    return {"type": "function", "function": {"name": name, "arguments": arguments}}


def tool_turn(observation: str | None, calls: list[dict], outputs: list[str], answer: str):
    messages = [{"role": "assistant", "content": "", "tool_calls": calls}]
    messages += [{"role": "tool", "content": out} for out in outputs]
    messages.append({"role": "assistant", "content": answer})
    return Turn(observation, answer, None, None, tuple(messages))


def episode(tag: str) -> list[Turn]:
    return [
        tool_turn(None, [call("cd", folder=tag)], [json.dumps({"cwd": tag})], "moved"),
        tool_turn("Now list it.", [call("ls", a=True)], ['{"files": []}'], f"{tag}: empty"),
    ]


def test_structured_turns_round_trip_as_version_2_and_text_turns_stay_version_1() -> None:
    history = History(0, tuple(episode("docs")), "improve")
    data = history.to_bytes()
    assert json.loads(data)["v"] == 2
    assert History.from_bytes(data) == history
    assert history.turns[0].calls == [("cd", {"folder": "docs"})]
    assert history.turns[1].text == 'ls({"a": true})\ndocs: empty'
    text_only = History(0, (Turn(None, "4", 1.0),), "improve")
    assert json.loads(text_only.to_bytes())["v"] == 1  # readable by earlier builds
    old = b'{"v":1,"base":0,"kind":"base","turns":[{"observation":null,"response":"x",'
    old += b'"reward":null}]}'
    assert History.from_bytes(old).turns == (Turn(None, "x"),)
    assert turns_from_json(turns_to_json(history.turns)) == history.turns


@pytest.mark.parametrize(
    "payload, match",
    [
        (b'{"v":3,"base":0,"kind":"base","turns":[]}', "version 3"),
        (b'{"v":true,"base":0,"kind":"base","turns":[]}', "version"),
        (
            b'{"v":1,"base":0,"kind":"base","turns":[{"observation":null,"response":"x",'
            b'"reward":null,"messages":[]}]}',
            "unexpected turn keys",
        ),
        (
            b'{"v":2,"base":0,"kind":"base","turns":[{"observation":null,"response":"x",'
            b'"reward":null,"messages":[{"role":"user","content":"x"}]}]}',
            "role",
        ),
        (
            b'{"v":2,"base":0,"kind":"base","turns":[{"observation":null,"response":"x",'
            b'"reward":null,"messages":[{"role":"tool","content":"x","tool_calls":[]}]}]}',
            "tool_calls",
        ),
        (
            b'{"v":2,"base":0,"kind":"base","turns":[{"observation":null,"response":"x",'
            b'"reward":null,"messages":[{"role":"assistant","content":"",'
            b'"tool_calls":[{"function":{}}]}]}]}',
            "name",
        ),
        (
            b'{"v":2,"base":0,"kind":"base","turns":[{"observation":null,"response":"x",'
            b'"reward":null,"messages":{"role":"tool"}}]}',
            "list",
        ),
    ],
)
def test_malformed_stored_histories_are_refused(payload: bytes, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        History.from_bytes(payload)


def test_turn_messages_are_copied_and_checked() -> None:
    messages = [{"role": "tool", "content": "out"}]
    turn = Turn(None, "done", None, None, tuple(messages))
    messages[0]["content"] = "changed"
    assert turn.messages[0]["content"] == "out"
    with pytest.raises(ValueError, match="JSON"):
        Turn(None, "x", None, None, ({"role": "tool", "content": "x", "extra": {1, 2}},))
    with pytest.raises(ValueError):
        turns_from_json("{}")


def test_the_attempt_is_shown_with_tool_roles_after_its_context() -> None:
    turns = episode("docs")
    templates = templates_for("generic")
    messages = render_tool_iteration(TASK, turns, "improve", templates)
    roles = [m["role"] for m in messages]
    assert roles == [
        "system",
        "user",
        "assistant",
        "tool",
        "assistant",  # turn 1, kept as it was
        "user",  # turn 2's request
        "assistant",
        "tool",
        "assistant",  # the attempt at turn 2
        "user",  # the instruction
    ]
    assert messages[5]["content"] == "Now list it."
    assert messages[6]["tool_calls"] == [call("ls", a=True)]
    last = messages[-1]["content"]
    assert last.startswith(RESTORED_NOTE)
    assert "## Request\nNow list it." in last
    assert '## Current response\nls({"a": true})\ndocs: empty' in last
    first_only = render_tool_iteration(TASK, turns[:1], "diverge", templates)
    assert "## Request\nGo to docs and list it." in first_only[-1]["content"]
    assert "different" in first_only[-1]["content"]


def test_curriculum_archives_every_turn_prefix_and_replays_structured_prompts() -> None:
    seen: list[str] = []

    class Recorder:
        dim = 4

        def __call__(self, texts):
            seen.extend(texts)
            return np.eye(4, dtype=np.float32)[[len(t) % 4 for t in texts]]

    cfg = ExItConfig(min_archive_size=1, p_replay=1.0, p_diverge=0.0, domain="generic")
    cur = ExItCurriculum(cfg, [{"prompt": TASK, "answer": "t0"}], embedder=Recorder(), seed=1)
    (inst,) = cur.next_batch(1, 0)
    cur.observe([inst], [[episode("a"), episode("b")]], np.array([[1.0, 0.0]]), 0)
    assert any('cd({"folder": "a"})' in t for t in seen)  # the bonus embeds calls and answers
    histories = [History.from_bytes(p) for p in cur.archive.get(cur.archive.ids())]
    assert [len(h.turns) for h in histories] == [1, 2]
    assert all(t.messages for h in histories for t in h.turns)
    batch = cur.next_batch(40, 1)
    assert {len(b.history.turns) for b in batch} == {1, 2}
    for b in batch:
        assert b.prompt == b.render(cur.templates)
        assert b.render(cur.templates, b.previous_attempt) == b.prompt  # what budgets shorten
        assert b.prompt[-1]["content"].startswith(RESTORED_NOTE)
        assert any(m.get("tool_calls") for m in b.prompt)
    # The new iterate of a replayed turn keeps its messages in the child.
    replay = next(b for b in batch if len(b.history.turns) == 2)
    new = [tool_turn(None, [call("ls")], ["[]"], "again")]
    before = set(cur.archive.ids().tolist())
    cur.observe([replay], [[new, new]], np.array([[1.0, 1.0]]), 2)
    added = [i for i in cur.archive.ids().tolist() if i not in before]
    child = History.from_bytes(cur.archive.get(added)[-1])
    assert child.turns[1].observation == "Now list it."
    assert child.turns[1].messages == new[0].messages and child.turns[1].reward == 1.0
