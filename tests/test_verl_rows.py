"""The plugin's pieces that need no running verl: rows, prompt budget, base tasks, embedder
threads, checkpoint retention. Reference values come from verl's own code paths or by hand."""

from __future__ import annotations

import numpy as np
import pytest
from deps import need

need("verl")

import torch  # noqa: E402
import verl_fit_harness as harness  # noqa: E402

from exit_verl.verl.rows import Rows, parse_key, with_outcome  # noqa: E402


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(harness.make_model_dir(tmp_path_factory.mktemp("m")))


def rows_of(scores: list[list[float]], keys: list[str]) -> Rows:
    parsed = [parse_key(k) for k in keys]
    return Rows(
        partition_id="train",
        keys=keys,
        uids=[p[0] for p in parsed],
        sessions=[p[1] for p in parsed],
        outputs=[p[2] for p in parsed],
        texts=[""] * len(keys),
        scores=[torch.tensor(s) for s in scores],
    )


# -- rows -------------------------------------------------------------------------------------


def test_outcome_is_verls_unmasked_sum_even_when_the_last_token_has_mask_zero() -> None:
    from verl.experimental.agent_loop.agent_loop import AgentLoopOutput
    from verl.trainer.ppo.core_algos import compute_grpo_outcome_advantage

    # verl's agent loop output of a multi-turn row that ends in a tool observation (mask 0).
    out = AgentLoopOutput(
        prompt_ids=[1, 2],
        response_ids=[5, 6, 7, 8],
        response_mask=[1, 1, 0, 0],
        reward_score=1.0,
        metrics={},
    ).as_dict()
    assert out["response_mask"][-1] == 0 and out["rm_scores"][-1] == 1.0  # where verl puts it
    rows = rows_of([out["rm_scores"].tolist(), [0.0, 0.0, 0.0]], ["u_0_0", "u_1_0"])
    np.testing.assert_array_equal(rows.outcome, [1.0, 0.0])
    # Shaped back: verl's GRPO reads exactly the value written, mask or not.
    shaped = [with_outcome(s, v) for s, v in zip(rows.scores, [0.25, 0.75], strict=True)]
    padded = torch.nn.utils.rnn.pad_sequence(shaped, batch_first=True)
    mask = torch.tensor([[1, 1, 0, 0], [1, 1, 1, 0]], dtype=torch.float32)
    adv, _ = compute_grpo_outcome_advantage(padded, mask, np.array(["u", "u"], dtype=object))
    # Two samples, rewards 0.25 and 0.75: GRPO gives -/+ (0.25 / std) on the masked tokens.
    expected = (0.75 - 0.5) / (np.std([0.25, 0.75], ddof=1) + 1e-6)
    torch.testing.assert_close(adv[1, :3], torch.full((3,), expected, dtype=torch.float32))
    torch.testing.assert_close(adv[0, :2], torch.full((2,), -expected, dtype=torch.float32))
    assert padded.sum(dim=1).tolist() == pytest.approx([0.25, 0.75])
    assert shaped[0][:-1].tolist() == rows.scores[0][:-1].tolist()  # only the last token moves


def test_session_finals_pick_each_sessions_last_output() -> None:
    rows = rows_of([[0.0]] * 5, ["a_0_0", "a_0_2", "a_0_1", "a_1_0", "b_0_0"])
    assert rows.session_finals() == {("a", 0): 1, ("a", 1): 3, ("b", 0): 4}
    for bad in ("a-0-0", "a_x_0", "a_0"):
        with pytest.raises(ValueError, match="row key"):
            parse_key(bad)
    with pytest.raises(ValueError, match="nowhere"):
        with_outcome(torch.zeros(0), 1.0)


# -- prompt budget ----------------------------------------------------------------------------


def test_rows_read_the_feedback_of_verls_extra_fields() -> None:
    """fetch_rows on the structure verl's agent loop stores (list_of_dict_to_tensordict)."""
    from verl.utils.tensordict_utils import list_of_dict_to_tensordict

    from exit_verl.verl.rows import fetch_rows

    infos = [{"feedback": "Traceback: boom", "mle_raw": None}, {"feedback": None}, {}]
    stored = list_of_dict_to_tensordict(
        [
            {
                "uid": f"u{i}",
                "responses": torch.tensor([5, 6, 7][: i + 1]),
                "rm_scores": torch.zeros(i + 1),
                "extra_fields": {"reward_extra_info": info, "min_global_steps": 0},
            }
            for i, info in enumerate(infos)
        ]
    )

    class Queue:
        def kv_batch_get(self, keys, partition_id, select_fields):
            return stored.select(*select_fields)

    class Tokenizer:
        def batch_decode(self, ids, skip_special_tokens=True):
            return [str(x) for x in ids]

    rows_ = fetch_rows(Queue(), ["u0_0_0", "u1_0_0", "u2_0_0"], "train", Tokenizer())
    assert [rows_.feedback(i) for i in range(3)] == ["Traceback: boom", None, None]
    assert rows_.extra_fields[0]["min_global_steps"] == 0


def test_attempts_are_shortened_until_verls_rendering_fits(tokenizer) -> None:
    from verl.utils.tokenizer.continuous_token_wiring import create_continuous_token_builder

    from exit_verl.verl.prompt_budget import MARKER, PromptBudget

    system = {"role": "system", "content": harness.SYSTEM}
    task = "Tom has 5 apples and buys 6 more. How many now?"

    def render(attempt: str) -> list[dict]:
        return [system, {"role": "user", "content": f"{task}\nCurrent response:\n{attempt}"}]

    builder = create_continuous_token_builder(tokenizer)  # what verl's agent loop counts with
    count = lambda messages: len(builder.build_initial_tokens(messages))  # noqa: E731
    attempt = "We add 5 and 6. " + "carefully " * 200 + "#### 11"
    budget = PromptBudget.for_verl(tokenizer, max_tokens=80)
    assert count(render(attempt)) > 80
    fitted = budget.fit(render, attempt)
    assert fitted.clipped and fitted.fits and fitted.tokens == count(fitted.messages) <= 80
    assert fitted.messages[0] == system and task in fitted.messages[1]["content"]
    kept = fitted.messages[1]["content"].split("Current response:\n", 1)[1]
    assert MARKER in kept and kept.startswith("We add") and kept.endswith("#### 11")
    # One more kept token would not fit: the search keeps as much of the attempt as it can.
    ids = tokenizer.encode(attempt, add_special_tokens=False)
    kept_tokens = len(tokenizer.encode(kept.replace(MARKER, ""), add_special_tokens=False))
    assert count(render(budget._shorten(ids, kept_tokens + 2))) > 80
    short = budget.fit(render, "#### 11")
    assert not short.clipped and short.messages == render("#### 11")
    hopeless = PromptBudget.for_verl(tokenizer, max_tokens=5).fit(render, attempt)
    assert not hopeless.fits and hopeless.clipped


# -- base tasks -------------------------------------------------------------------------------


def verl_dataset(tmp_path, rows, tokenizer, **data):
    from omegaconf import OmegaConf
    from verl.utils.dataset.rl_dataset import RLHFDataset

    path = harness.write_parquet(tmp_path / "d.parquet", rows)
    config = OmegaConf.create({"prompt_key": "question", "filter_overlong_prompts": False, **data})
    return RLHFDataset(data_files=path, tokenizer=tokenizer, config=config)


def test_base_tasks_use_the_configured_prompt_key(tmp_path, tokenizer) -> None:
    from exit_verl.verl.controller import base_tasks_from_dataset

    rows = [harness.task_row(i, i, 2 * i) for i in range(3)]
    tasks = base_tasks_from_dataset(verl_dataset(tmp_path, rows, tokenizer), "question")
    assert [t["prompt"] for t in tasks] == [r["question"] for r in rows]
    assert [t["answer"] for t in tasks] == ["0", "3", "6"] and tasks[2]["row"] == 2
    with pytest.raises(ValueError, match="prompt_key"):
        base_tasks_from_dataset(verl_dataset(tmp_path, rows, tokenizer), "prompt")


def test_datasets_with_images_are_refused_not_stripped(tmp_path, tokenizer) -> None:
    from exit_verl.verl.controller import base_tasks_from_dataset

    rows = [harness.task_row(i, i, i) for i in range(2)]
    rows[1]["images"] = [{"image": "cat.png"}]
    rows[0]["images"] = []
    with pytest.raises(ValueError, match="images"):
        base_tasks_from_dataset(verl_dataset(tmp_path, rows, tokenizer), "question")
    for row in rows:
        row["images"] = []  # the column, empty everywhere: text only, accepted
    assert len(base_tasks_from_dataset(verl_dataset(tmp_path, rows, tokenizer), "question")) == 2


# -- embedder threads -------------------------------------------------------------------------


def test_embedder_runs_on_its_own_threads_and_is_timed() -> None:
    from exit_verl.embedding import HashingEmbedder
    from exit_verl.verl.timed_embedder import TimedEmbedder, available_cpus

    seen = []

    class Probe(HashingEmbedder):
        def __call__(self, texts):
            seen.append(torch.get_num_threads())
            return super().__call__(texts)

    before = torch.get_num_threads()
    torch.set_num_threads(1)  # what OMP_NUM_THREADS=1 gives verl's task runner
    try:
        timed = TimedEmbedder("hashing", threads=2, embedder=Probe())
        out = timed(["a b", "c"])
        assert seen == [2] and torch.get_num_threads() == 1  # raised for the call only
    finally:
        torch.set_num_threads(before)
    np.testing.assert_array_equal(out, HashingEmbedder()(["a b", "c"]))
    seconds, texts = timed.take_counters()
    assert seconds > 0 and texts == 2 and timed.take_counters() == (0.0, 0)
    assert TimedEmbedder("hashing").threads == available_cpus()
    with pytest.raises(ValueError, match="threads"):
        TimedEmbedder("hashing", threads=0)


# -- checkpoint retention ---------------------------------------------------------------------


def _save_like_the_trainer(files, actor, root, step: int, keep, tracker: bool = True) -> None:
    """ExIt files, verl's actor (with verl's retention), verl's tracker, then ExIt pruning."""
    folder = root / f"global_step_{step}"
    folder.mkdir()
    for name in ("exit_archive.snap", "exit_state.json"):
        (folder / name).write_text("x")
    actor.save_checkpoint(str(folder / "actor"), None, step, keep)
    if tracker:
        (root / "latest_checkpointed_iteration.txt").write_text(str(step))
    files.after_save(folder, keep)


@pytest.mark.parametrize("keep", [None, 1, 2, 3])
def test_exit_files_are_pruned_exactly_like_verls_actor_checkpoints(tmp_path, keep) -> None:
    from exit_verl.verl.checkpoint_files import ExItCheckpointFiles, max_actor_checkpoints

    actor = harness.FakeActor(dp=1)  # verl's retention methods on the actor's folders
    files = ExItCheckpointFiles()
    for step in range(1, 6):
        _save_like_the_trainer(files, actor, tmp_path, step, keep)
    with_actor = {p.parent.name for p in tmp_path.glob("*/actor")}
    with_state = {p.parent.name for p in tmp_path.glob("*/exit_state.json")}
    with_archive = {p.parent.name for p in tmp_path.glob("*/exit_archive.snap")}
    assert with_state == with_archive == with_actor
    assert len(with_state) == (5 if keep is None else keep)
    assert max_actor_checkpoints({"max_actor_ckpt_to_keep": 3}) == 3
    assert (
        max_actor_checkpoints({"max_actor_ckpt_to_keep": 3, "remove_previous_ckpt_in_save": True})
        == 1
    )


def test_exit_files_of_the_tracked_step_are_never_pruned(tmp_path) -> None:
    """A save whose tracker was not written yet (interrupted, or verl's async save) prunes
    nothing the tracker still names."""
    from exit_verl.verl.checkpoint_files import ExItCheckpointFiles

    actor = harness.FakeActor(dp=1)
    files = ExItCheckpointFiles()
    _save_like_the_trainer(files, actor, tmp_path, 1, keep=1)
    _save_like_the_trainer(files, actor, tmp_path, 2, keep=1, tracker=False)
    assert (tmp_path / "latest_checkpointed_iteration.txt").read_text() == "1"
    assert (tmp_path / "global_step_1" / "exit_state.json").is_file()
    _save_like_the_trainer(files, actor, tmp_path, 3, keep=1)
    assert {p.parent.name for p in tmp_path.glob("*/exit_state.json")} == {"global_step_3"}


# -- prompts in flight in exit_state.json -----------------------------------------------------


def _controller(tmp_path, tokenizer):
    from exit_verl import ExItConfig
    from exit_verl.verl.controller import ExItController

    rows = [harness.task_row(i, i, 2 * i) for i in range(4)]
    config = ExItConfig(min_archive_size=1, diversity_bonus="none")
    return ExItController(config, verl_dataset(tmp_path, rows, tokenizer), "question", None)


def test_prompts_in_flight_round_trip_and_malformed_ones_change_nothing(tmp_path, tokenizer):
    import json

    from exit_verl.verl.checkpoint_layout import STATE_FILE

    saved = _controller(tmp_path, tokenizer)
    issued = saved.next_batch_dict(3, 1)["uid"]
    saved.save(tmp_path / "ckpt", 1)
    state = json.loads((tmp_path / "ckpt" / STATE_FILE).read_text())
    assert state["version"] == 4 and [p["uid"] for p in state["pending"]] == list(issued)

    loaded = _controller(tmp_path, tokenizer)
    loaded.load(tmp_path / "ckpt", 1)
    assert list(loaded.pending) == list(issued)
    for uid, (inst, step) in loaded.pending.items():
        assert step == 1 and inst.prompt == saved.pending[uid][0].prompt

    record = state["pending"][0]
    bad_records = [
        [record, record],  # a uid twice
        [{**record, "issued": 2}],  # issued after the save
        [{**record, "uid": "a_b"}],  # verl splits keys on "_"
        [{**record, "instance": {**record["instance"], "base_index": 9}}],
        [{k: v for k, v in record.items() if k != "instance"}],
        {"not": "a list"},
    ]
    for pending in bad_records:
        (tmp_path / "ckpt" / STATE_FILE).write_text(json.dumps({**state, "pending": pending}))
        fresh = _controller(tmp_path, tokenizer)
        with pytest.raises(ValueError, match="pending"):
            fresh.load(tmp_path / "ckpt", 1)
        assert fresh.pending == {} and fresh._uid_counter == 0

    # Version 3 (sync mode only, nothing in flight at a save) reads with no pending prompts;
    # other versions are refused.
    v3 = {k: v for k, v in state.items() if k != "pending"}
    for version, reads in ((3, True), (2, False), (5, False)):
        (tmp_path / "ckpt" / STATE_FILE).write_text(json.dumps({**v3, "version": version}))
        fresh = _controller(tmp_path, tokenizer)
        if reads:
            fresh.load(tmp_path / "ckpt", 1)
            assert fresh.pending == {} and fresh._uid_counter == state["uid_counter"]
        else:
            with pytest.raises(ValueError, match=f"unsupported ExIt state version {version}"):
                fresh.load(tmp_path / "ckpt", 1)
