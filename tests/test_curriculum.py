"""ExItCurriculum behaviour: selection, rewards, learnability, children, admission, bonus,
resume and bad input. Expected values are worked out by hand in the comments."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import binomtest

from exit_verl import ExItConfig, ExItCurriculum, History, TaskInstance, Turn
from exit_verl.embedding import HashingEmbedder
from exit_verl.prompts import base_messages

TASKS = [{"prompt": f"What is {i} + {i}?", "answer": str(2 * i), "id": f"t{i}"} for i in range(20)]


def make(seed: int = 0, **overrides) -> ExItCurriculum:
    cfg = ExItConfig(**{"min_archive_size": 4, "embedder": "hashing", **overrides})
    return ExItCurriculum(cfg, TASKS, seed=seed)


def respond(batch: list[TaskInstance], g: int, step: int) -> list[list[str]]:
    return [[f"attempt {step}.{i}.{j}: answer {j}" for j in range(g)] for i in range(len(batch))]


def spread_rewards(n: int, g: int) -> np.ndarray:
    return np.tile(np.linspace(0.0, 1.0, g), (n, 1))


def fill(cur: ExItCurriculum, steps: int, n: int = 4, g: int = 4) -> int:
    for step in range(steps):
        batch = cur.next_batch(n, step)
        cur.observe(batch, respond(batch, g, step), spread_rewards(n, g), step)
    return steps


class TableEmbedder:
    """Embeds each text by a fixed table (for hand-computed bonuses)."""

    def __init__(self, table: dict[str, list[float]]) -> None:
        self.table = table
        self.dim = len(next(iter(table.values())))

    def __call__(self, texts):
        return np.array([self.table[t] for t in texts], dtype=np.float32)


def stored(cur: ExItCurriculum, ids) -> list[History]:
    return [History.from_bytes(p) for p in cur.archive.get(list(ids))]


# -- selection ------------------------------------------------------------------------------


def test_base_tasks_cycle_through_a_seeded_shuffle() -> None:
    cur = make()
    seen = [inst.base_index for inst in cur.next_batch(40, 0)]
    assert sorted(seen[:20]) == list(range(20))
    assert sorted(seen[20:]) == list(range(20))
    assert seen[:20] != seen[20:]  # each epoch is a fresh permutation
    other = make(seed=1)
    assert [i.base_index for i in other.next_batch(20, 0)] != seen[:20]


def test_no_replay_below_min_archive_size() -> None:
    cur = make(min_archive_size=1000, p_replay=1.0, capacity=4096)
    for step in range(5):
        batch = cur.next_batch(8, step)
        assert all(b.kind == "base" and b.archive_id is None and b.depth == 0 for b in batch)
        cur.observe(batch, respond(batch, 3, step), spread_rewards(8, 3), step)
    assert len(cur.archive) == 5 * 8  # one child per group, yet the gate holds


def test_kind_frequencies_match_probabilities() -> None:
    cur = make(p_replay=0.3, p_diverge=0.25)
    step = fill(cur, 2)
    assert len(cur.archive) >= cur.config.min_archive_size
    kinds = [b.kind for b in cur.next_batch(4000, step)]
    replays = sum(k != "base" for k in kinds)
    diverges = sum(k == "diverge" for k in kinds)
    assert binomtest(replays, len(kinds), 0.3).pvalue > 1e-4
    assert binomtest(diverges, replays, 0.25).pvalue > 1e-4


def test_replayed_prompt_carries_the_whole_attempt_and_can_be_rendered_again() -> None:
    cur = make(p_replay=1.0, p_diverge=0.5)
    for step in range(2):
        batch = cur.next_batch(4, step)
        long = [
            [f"step {step}: " + "word " * 2000 + f"end {i}.{j}" for j in range(4)] for i in range(4)
        ]
        cur.observe(batch, long, spread_rewards(4, 4), step)
    batch = cur.next_batch(16, 2)
    assert {b.kind for b in batch} == {"improve", "diverge"}
    for inst in batch:
        (history,) = stored(cur, [inst.archive_id])
        text = inst.prompt[-1]["content"]
        assert inst.previous_attempt == history.attempt and len(inst.previous_attempt) > 10_000
        assert inst.previous_attempt in text  # shown whole
        assert inst.previous_reward == history.reward
        assert TASKS[inst.base_index]["prompt"] in text
        assert inst.answer == TASKS[inst.base_index]["answer"]
        assert inst.task_prompt == TASKS[inst.base_index]["prompt"]
        marker = "significantly" if inst.kind == "diverge" else "Improve"
        assert marker in text
        assert inst.render(cur.templates) == inst.prompt
        short = inst.render(cur.templates, attempt="[shortened]")[-1]["content"]
        assert "[shortened]" in short and inst.previous_attempt not in short


# -- children -------------------------------------------------------------------------------


def test_one_random_child_per_group_with_the_groups_score_even_zero() -> None:
    cur = make(p_replay=1.0)
    step = fill(cur, 2)
    batch = cur.next_batch(4, step)
    before = set(cur.archive.ids().tolist())
    # S: [0, 0, 1, 1] → 0.25; [0, 0, 0, 0] → 0 (still admitted: the archive is not full).
    rewards = np.array([[0.0, 0.0, 1.0, 1.0], [0.0] * 4, [0.0, 0.0, 1.0, 1.0], [1.0] * 4])
    responses = respond(batch, 4, step)
    cur.observe(batch, responses, rewards, step)
    new = sorted(set(cur.archive.ids().tolist()) - before)
    assert len(new) == 4  # one per group
    lineage = cur.archive.lineage(new)
    info = cur.archive.info(new)
    for k, (child, history) in enumerate(zip(new, stored(cur, new), strict=True)):
        i = next(i for i in range(4) if history.attempt in responses[i])
        j = responses[i].index(history.attempt)
        assert info["score"][k] == [0.25, 0.0, 0.25, 0.0][i]
        assert history.reward == rewards[i, j] and history.kind == batch[i].kind
        assert lineage["parent"][k] == batch[i].archive_id
        assert lineage["depth"][k] == batch[i].depth  # parent depth + 1
        assert child in cur.archive


def test_the_child_is_drawn_uniformly_from_the_group() -> None:
    cur = make(p_replay=0.0, capacity=4096)  # base tasks only: every group adds a child
    picks = []
    for step in range(50):
        batch = cur.next_batch(4, step)
        responses = [[f"g{step}.{i} r{j}" for j in range(4)] for i in range(4)]
        before = set(cur.archive.ids().tolist())
        cur.observe(batch, responses, spread_rewards(4, 4), step)
        for h in stored(cur, sorted(set(cur.archive.ids().tolist()) - before)):
            picks.append(int(h.attempt[-1]))
    counts = np.bincount(picks, minlength=4)
    assert counts.sum() == 200
    for c in counts:  # each response index is picked ~1/4 of the time
        assert binomtest(int(c), 200, 0.25).pvalue > 1e-4


def test_children_per_group_all_or_best() -> None:
    cur = make(children_per_group=0)
    batch = cur.next_batch(1, 0)
    cur.observe(batch, [["a", "b", "c"]], np.array([[0.2, 0.9, 0.5]]), 0)
    assert sorted(h.attempt for h in stored(cur, cur.archive.ids())) == ["a", "b", "c"]
    cur = make(children_per_group=2, child_selection="best")
    batch = cur.next_batch(1, 0)
    cur.observe(batch, [["low", "best", "mid", "worst"]], np.array([[0.2, 0.9, 0.5, 0.0]]), 0)
    assert sorted(h.attempt for h in stored(cur, cur.archive.ids())) == ["best", "mid"]


def test_min_child_learnability_and_max_depth_filter_children() -> None:
    cur = make(min_child_learnability=0.11)
    batch = cur.next_batch(3, 0)
    # S = 0.25, 7/64 ≈ 0.109 (G = 8, one success), 0 → only the first is above 0.11.
    rewards = [[0.0, 1.0] * 4, [1.0] + [0.0] * 7, [1.0] * 8]
    cur.observe(batch, respond(batch, 8, 0), np.array(rewards), 0)
    assert len(cur.archive) == 1
    cur = make(p_replay=1.0, max_depth=2, min_archive_size=1)
    for step in range(12):
        batch = cur.next_batch(4, step)
        cur.observe(batch, respond(batch, 3, step), spread_rewards(4, 3), step)
    assert int(cur.archive.stats()["depth_max"]) <= 1  # stored depth + 1 <= max_depth
    assert max(b.depth for b in cur.next_batch(64, 12)) <= 2


def test_admission_rejects_children_below_the_archive_minimum() -> None:
    cur = make(capacity=2, min_archive_size=2, p_replay=0.0)
    batch = cur.next_batch(2, 0)
    cur.observe(batch, respond(batch, 2, 0), np.array([[0.0, 1.0], [1.0, 0.0]]), 0)
    assert cur.archive.ids().tolist() == [0, 1]  # full, both at S = 0.25
    batch = cur.next_batch(1, 1)
    cur.observe(batch, respond(batch, 2, 1), np.array([[1.0, 1.0]]), 1)  # S = 0 < 0.25
    assert cur.archive.ids().tolist() == [0, 1]
    m = cur.metrics()
    assert m["children_rejected"] == 1.0 and m["children_added"] == 0.0
    assert m["archive_rejected"] == 1.0
    batch = cur.next_batch(1, 2)
    cur.observe(batch, respond(batch, 2, 2), np.array([[0.0, 1.0]]), 2)  # S = 0.25 >= min
    # Admitted; evicts the lowest score with the smallest id (0). Id 2 went to the rejected.
    assert cur.archive.ids().tolist() == [1, 3]
    assert cur.metrics()["children_added"] == 1.0


def test_replayed_entries_are_rescored_with_the_new_learnability() -> None:
    cur = make(p_replay=1.0)
    step = fill(cur, 2)
    batch = cur.next_batch(3, step)
    # S by hand: [0, 0, 0, 1] → 3/16; [5] * 4 clips to 1 → 0; [0, 1, .5, .5] → 0.125.
    rewards = np.array([[0.0, 0.0, 0.0, 1.0], [5.0] * 4, [0.0, 1.0, 0.5, 0.5]])
    fb = cur.observe(batch, respond(batch, 4, step), rewards, step)
    np.testing.assert_allclose(fb.learnability, [3 / 16, 0.0, 0.125])
    expected: dict[int, float] = {}
    for inst, s in zip(batch, [3 / 16, 0.0, 0.125], strict=True):
        expected[inst.archive_id] = s  # the last group of an id wins
    live = [a for a in expected if a in cur.archive]
    np.testing.assert_allclose(cur.archive.info(live)["score"], [expected[a] for a in live])


# -- rewards --------------------------------------------------------------------------------


def test_improvement_reward_uses_each_attempts_stored_reward() -> None:
    cur = make(
        reward_range=(0.0, 10.0),
        iteration_reward="improvement",
        children_per_group=0,
        p_replay=1.0,
        p_diverge=0.5,
        min_archive_size=1,
        diversity_bonus="none",
    )
    batch = cur.next_batch(1, 0)
    fb = cur.observe(batch, [["two", "six"]], np.array([[2.0, 6.0]]), 0)
    np.testing.assert_allclose(fb.rewards, [[0.2, 0.6]])  # base: rescaled by (0, 10)
    assert fb.learnability[0] == pytest.approx(0.04)
    assert sorted(h.reward for h in stored(cur, cur.archive.ids())) == [0.2, 0.6]
    batch = cur.next_batch(16, 1)
    task = np.array([[3.0, 8.0, 10.0]] * 16)  # quality 0.3, 0.8, 1.0
    fb = cur.observe(batch, [["x", "y", "z"]] * 16, task, 1)
    expected = {  # max(0, (q − r_prev) / (1 − r_prev))
        0.2: [0.125, 0.75, 1.0],
        0.6: [0.0, 0.5, 1.0],
    }
    kinds = set()
    for inst, row, s in zip(batch, fb.rewards, fb.learnability, strict=True):
        kinds.add(inst.kind)
        want = expected[inst.previous_reward] if inst.kind == "improve" else [0.3, 0.8, 1.0]
        np.testing.assert_allclose(row, want)
        assert s == pytest.approx(np.var(want))
    assert kinds == {"improve", "diverge"}
    # Each child stores its own quality (not the improvement reward).
    assert {h.reward for h in stored(cur, cur.archive.ids())} >= {0.3, 0.8, 1.0}


def test_raw_rewards_are_the_task_rewards_exactly() -> None:
    cur = make(diversity_bonus="none")
    batch = cur.next_batch(3, 0)
    rewards = np.random.default_rng(0).random((3, 5))
    fb = cur.observe(batch, respond(batch, 5, 0), rewards, 0)
    assert fb.rewards.dtype == np.float64 and fb.rewards.shape == (3, 5)
    np.testing.assert_array_equal(fb.rewards, rewards)
    np.testing.assert_array_equal(fb.advantage_scale, np.ones((3, 5)))


def test_feedback_is_stored_with_the_attempt_and_shown_when_iterated_on() -> None:
    cfg = ExItConfig.preset(
        "improve", "mle", min_archive_size=1, p_replay=1.0, children_per_group=0
    )
    cur = ExItCurriculum(cfg, TASKS)
    batch = cur.next_batch(1, 0)
    notes = [["Traceback: KeyError 'y'", None]]
    cur.observe(batch, [["code a", "code b"]], np.array([[0.0, 1.0]]), 0, feedback=notes)
    by_attempt = {h.attempt: h for h in stored(cur, cur.archive.ids())}
    assert by_attempt["code a"].turns[-1].feedback == "Traceback: KeyError 'y'"
    assert by_attempt["code b"].turns[-1].feedback is None
    for inst in cur.next_batch(8, 1):
        text = inst.prompt[-1]["content"]
        trace = "Traceback: KeyError 'y'" if inst.previous_attempt == "code a" else "(none)"
        assert f"## Error trace\n{trace}" in text


# -- curriculum-only ablation ---------------------------------------------------------------


def test_iterate_false_archives_base_tasks_and_replays_them_unchanged() -> None:
    cfg = ExItConfig.preset("curriculum", "math", min_archive_size=3, p_replay=1.0)
    cur = ExItCurriculum(cfg, TASKS[:3])
    batch = cur.next_batch(3, 0)
    assert sorted(b.base_index for b in batch) == [0, 1, 2]
    rewards = {0: [0.0, 1.0], 1: [1.0, 1.0], 2: [0.0, 0.0]}  # S 0.25, 0, 0
    cur.observe(batch, respond(batch, 2, 0), np.array([rewards[b.base_index] for b in batch]), 0)
    ids = cur.archive.ids().tolist()
    scores = dict(zip(ids, cur.archive.info(ids)["score"].tolist(), strict=True))
    histories = stored(cur, cur.archive.ids())
    assert sorted(h.base_index for h in histories) == [0, 1, 2]
    assert all(h.turns == () and h.kind == "base" for h in histories)
    batch = cur.next_batch(6, 1)
    for inst in batch:
        assert inst.kind == "base" and inst.archive_id is not None and inst.depth == 0
        assert inst.previous_attempt is None and inst.previous_reward is None
        assert inst.prompt == base_messages(TASKS[inst.base_index]["prompt"], cur.templates)
    fb = cur.observe(batch, respond(batch, 2, 1), np.tile([0.0, 1.0], (6, 1)), 1)
    assert len(cur.archive) == 3  # re-scored, no children
    scores.update({b.archive_id: 0.25 for b in batch})  # replayed entries now score 0.25
    ids = cur.archive.ids().tolist()
    np.testing.assert_allclose(cur.archive.info(ids)["score"], [scores[a] for a in ids])
    assert fb.advantage_scale.tolist() == [[1.0, 1.0]] * 6


def test_iterate_false_fresh_draws_of_an_archived_task_rescore_it() -> None:
    cfg = ExItConfig.preset("curriculum", "math", min_archive_size=100, p_replay=0.0)
    cur = ExItCurriculum(cfg, TASKS[:3])
    for step, row in enumerate(([0.0, 1.0], [1.0, 1.0])):  # S 0.25 then 0
        batch = cur.next_batch(3, step)  # the same three tasks, epoch after epoch
        cur.observe(batch, respond(batch, 2, step), np.tile(row, (3, 1)), step)
    assert cur.archive.ids().tolist() == [0, 1, 2]
    assert cur.archive.info([0, 1, 2])["score"].tolist() == [0.0, 0.0, 0.0]


def test_grpo_preset_never_replays() -> None:
    cfg = ExItConfig.preset("grpo", "math", min_archive_size=1, embedder="hashing")
    cur = ExItCurriculum(cfg, TASKS)
    for step in range(5):
        batch = cur.next_batch(8, step)
        assert all(b.kind == "base" and b.archive_id is None for b in batch)
        fb = cur.observe(batch, respond(batch, 2, step), spread_rewards(8, 2), step)
        assert fb.advantage_scale.tolist() == [[1.0, 1.0]] * 8
    assert len(cur.archive) > 0  # learnability is still tracked


# -- diversity bonus ------------------------------------------------------------------------


BONUS_TABLE = {"p": [-3.0, 0.0], "q": [-1.0, 0.0], "r": [2.0, 0.0], "s": [6.0, 0.0]}


def test_centroid_bonus_scales_advantages_not_rewards() -> None:
    cfg = ExItConfig(min_archive_size=4)
    cur = ExItCurriculum(cfg, TASKS, embedder=TableEmbedder(BONUS_TABLE))
    batch = cur.next_batch(2, 0)
    rewards = np.array([[1.0, 0.0, 1.0, 1.0], [1.0, 1.0, 1.0, 1.0]])
    fb = cur.observe(batch, [["p", "q", "r", "s"], ["q", "q", "q", "q"]], rewards, 0)
    # Distances to the centroid 1: 4, 2, 1, 5 → (d − 1)/(5 − 1); identical texts tie → 1.
    np.testing.assert_allclose(fb.advantage_scale, [[0.75, 0.25, 0.0, 1.0], [1.0] * 4])
    np.testing.assert_array_equal(fb.rewards, rewards)
    m = cur.metrics()
    assert m["advantage_scale_mean"] == pytest.approx((2.0 + 4.0) / 8)
    assert m["bonus_mean"] == pytest.approx((0.25 + 0.75 + 1.0) / 8)


def test_reward_side_bonus_is_an_option() -> None:
    cfg = ExItConfig(min_archive_size=4, diversity_bonus="centroid_reward", diversity_coef=0.5)
    cur = ExItCurriculum(cfg, TASKS, embedder=TableEmbedder(BONUS_TABLE))
    batch = cur.next_batch(1, 0)
    rewards = np.array([[1.0, 0.0, 1.0, 1.0]])
    fb = cur.observe(batch, [["p", "q", "r", "s"]], rewards, 0)
    # r · (1 + 0.5 · [0.75, 0.25, 0, 1]) = [1.375, 0, 1, 1.5]
    np.testing.assert_allclose(fb.rewards, [[1.375, 0.0, 1.0, 1.5]])
    assert fb.advantage_scale.tolist() == [[1.0] * 4]
    assert fb.learnability[0] == pytest.approx(3 / 16)  # from the rewards before the bonus


def test_knn_bonuses_use_archive_novelty() -> None:
    cur = make(diversity_bonus="knn_reward", diversity_coef=0.5, novelty_k=2, children_per_group=0)
    assert cur.archive.embedding_dim == cur.embedder.dim
    batch = cur.next_batch(1, 0)
    cur.observe(batch, [["red blue", "red green"]], np.array([[0.0, 1.0]]), 0)
    batch = cur.next_batch(1, 1)
    group = ["red blue", "red blue green", "seven eight nine"]
    novelty = cur.archive.novelty(cur.embedder(group), k=2)
    fb = cur.observe(batch, [group], np.array([[1.0, 1.0, 1.0]]), 1)
    spread = (novelty - novelty.min()) / (novelty.max() - novelty.min())
    np.testing.assert_allclose(fb.rewards[0], 1.0 + 0.5 * spread, rtol=1e-6)
    assert np.argmax(fb.rewards[0]) == 2
    cur = make(diversity_bonus="knn", novelty_k=2, children_per_group=0)
    batch = cur.next_batch(1, 0)
    fb = cur.observe(batch, [["red blue", "red green"]], np.array([[0.0, 1.0]]), 0)
    assert fb.advantage_scale.tolist() == [[1.0, 1.0]]  # empty archive: no novelty signal
    batch = cur.next_batch(1, 1)
    novelty = cur.archive.novelty(cur.embedder(group), k=2)
    fb = cur.observe(batch, [group], np.array([[1.0, 0.0, 1.0]]), 1)
    np.testing.assert_allclose(fb.advantage_scale[0], spread, rtol=1e-6)


def test_the_embedder_is_loaded_only_when_a_bonus_needs_it(monkeypatch) -> None:
    import exit_verl.curriculum as module

    made: list[str] = []

    def fake_make(name: str):
        made.append(name)
        return HashingEmbedder()

    monkeypatch.setattr(module, "make_embedder", fake_make)
    cur = ExItCurriculum(ExItConfig(), TASKS)  # the paper's default: centroid bonus, MiniLM
    assert made == []
    batch = cur.next_batch(2, 0)
    cur.observe(batch, respond(batch, 3, 0), spread_rewards(2, 3), 0)
    assert made == ["minilm"]
    plain = ExItCurriculum(ExItConfig(diversity_bonus="none"), TASKS)
    batch = plain.next_batch(2, 0)
    plain.observe(batch, respond(batch, 3, 0), spread_rewards(2, 3), 0)
    assert made == ["minilm"]


# -- persistence and metrics ----------------------------------------------------------------


def test_resume_gives_identical_batches_and_feedback() -> None:
    cur = make(p_replay=0.7, p_diverge=0.3)
    step = fill(cur, 3)
    state = cur.state_dict()
    other = ExItCurriculum(ExItConfig(**state["config"]), TASKS, embedder=HashingEmbedder())
    other.load_state_dict(state)
    for s in range(step, step + 4):
        a, b = cur.next_batch(6, s), other.next_batch(6, s)
        assert [(x.kind, x.archive_id, x.base_index, x.prompt) for x in a] == [
            (x.kind, x.archive_id, x.base_index, x.prompt) for x in b
        ]
        responses = respond(a, 3, s)
        rewards = np.random.default_rng(s).random((6, 3))
        fa, fb = cur.observe(a, responses, rewards, s), other.observe(b, responses, rewards, s)
        np.testing.assert_array_equal(fa.rewards, fb.rewards)
        np.testing.assert_array_equal(fa.advantage_scale, fb.advantage_scale)
    assert cur.archive.to_bytes() == other.archive.to_bytes()
    assert cur.metrics() == other.metrics()


def test_state_without_archive_bytes_needs_them_back() -> None:
    cur = make(p_replay=1.0)
    fill(cur, 3)
    state = cur.state_dict(include_archive=False)
    assert "archive" not in state
    other = make(p_replay=1.0)
    with pytest.raises(ValueError, match="archive"):
        other.load_state_dict(state)
    other.load_state_dict({**state, "archive": cur.archive.to_bytes()})
    assert [b.prompt for b in other.next_batch(5, 3)] == [b.prompt for b in cur.next_batch(5, 3)]


def test_load_state_rejects_mismatch_and_changes_nothing() -> None:
    cur = make()
    fill(cur, 2)
    state = cur.state_dict()
    small = ExItCurriculum(ExItConfig(), TASKS[:5])
    with pytest.raises(ValueError, match="base tasks"):
        small.load_state_dict(state)
    before = (cur.archive.to_bytes(), cur.state_dict())
    for bad in ({**state, "version": 99}, {**state, "rng": {"state": "garbage"}}):
        with pytest.raises(ValueError):
            cur.load_state_dict(bad)
        assert (cur.archive.to_bytes(), cur.state_dict()) == before


def test_load_state_checks_every_value_before_assigning_any() -> None:
    """A state from a curriculum further along, spoiled in one value: nothing of it is taken
    (the archive, RNG and cursor are only assigned once every value passed)."""
    ahead = make(p_replay=1.0)
    fill(ahead, 4)
    state = ahead.state_dict()
    cur = make(p_replay=1.0)
    fill(cur, 1)
    before = (cur.archive.to_bytes(), cur.state_dict())
    spoiled = [
        {"cursor": len(TASKS) + 1},
        {"cursor": "3"},
        {"epoch": -1},
        {"seed": 1.5},
        {"last_metrics": {"x": "y"}},
        {"last_metrics": [1, 2]},
        {"last_metrics": {"replay_fraction": 0.5, "renamed_metric": 1.0}},
        {"archive": b"not a snapshot"},
        {"archive": state["archive"][:-3]},
        {"tasks_fingerprint": "0" * 64},
        {"config": None},
    ]
    for change in spoiled:
        with pytest.raises(ValueError):
            cur.load_state_dict({**state, **change})
        assert (cur.archive.to_bytes(), cur.state_dict()) == before, change
    for key in ("rng", "epoch", "tasks_fingerprint"):
        with pytest.raises(ValueError, match="lacks"):
            cur.load_state_dict({k: v for k, v in state.items() if k != key})
    assert cur.load_state_dict(state) == []  # the same settings: nothing reported changed
    assert cur.archive.to_bytes() == state["archive"]


def test_load_state_refuses_other_base_tasks_of_the_same_count() -> None:
    cur = make()
    fill(cur, 2)
    other_tasks = [{**t, "answer": t["answer"] + "0"} for t in TASKS]
    other = ExItCurriculum(cur.config, other_tasks, seed=0)
    with pytest.raises(ValueError, match="other base tasks"):
        other.load_state_dict(cur.state_dict())


@pytest.mark.parametrize(
    ("saved", "now", "named"),
    [
        ({"capacity": 16, "prioritization": "rank"}, {}, "capacity: saved 16, this run 512"),
        ({"prioritization": "rank"}, {}, "prioritization: saved 'rank', this run 'softmax'"),
        ({"temperature": 0.5}, {}, "temperature"),
        ({"admission": "always"}, {}, "admission"),
        ({"staleness_coef": 0.1}, {}, "staleness_coef"),
        ({"diversity_bonus": "knn"}, {}, "embedding_dim"),
        ({"iterate": False, "p_diverge": 0.0}, {}, "iterate"),
    ],
)
def test_load_state_refuses_an_archive_built_with_other_settings(saved, now, named) -> None:
    cur = make(**saved)
    fill(cur, 2)
    target = make(**now)
    before = target.state_dict()
    with pytest.raises(ValueError, match=named):
        target.load_state_dict(cur.state_dict())
    assert target.state_dict() == before


def test_load_state_reports_settings_that_may_change_on_resume() -> None:
    cur = make(p_replay=0.5)
    fill(cur, 2)
    resumed = make(p_replay=0.25, diversity_coef=0.1)
    changed = resumed.load_state_dict(cur.state_dict())
    assert changed == ["p_replay: 0.5 -> 0.25", "diversity_coef: 0.5 -> 0.1"]
    assert resumed.config.p_replay == 0.25  # this run's settings apply from here on


def _with(inst: TaskInstance, **changes) -> TaskInstance:
    return TaskInstance(**{**inst.__dict__, **changes})


@pytest.mark.parametrize(
    "mutate",
    [
        lambda b, r, x: (b, r[:-1], x),  # fewer groups than instances
        lambda b, r, x: (b, r, x[:, :2]),  # rewards narrower than the groups
        lambda b, r, x: (b, r, np.where(x > 0.5, np.nan, x)),  # NaN reward
        lambda b, r, x: (b, r, np.full_like(x, np.inf)),
        lambda b, r, x: (b, r, x[0]),  # 1-D rewards
        lambda b, r, x: (b, r, [["a"] * 3] * 4),  # non-numeric rewards
        lambda b, r, x: ([*b[:-1], _with(b[-1], kind="refine")], r, x),  # unknown kind
        lambda b, r, x: ([*b[:-1], _with(b[-1], base_index=10**6)], r, x),
        lambda b, r, x: ([*b[:-1], _with(b[-1], history=None)], r, x),  # improve w/o history
        lambda b, r, x: ([*b[:-1], _with(b[-1], kind="base")], r, x),  # base with archive id
        lambda b, r, x: ([*b[:-1], "not an instance"], r, x),
        lambda b, r, x: (b, [*r[:-1], "abc"], x),  # a string instead of a group
        lambda b, r, x: (b, [*r[:-1], [1, 2, 3]], x),  # non-string responses
        lambda b, r, x: (b, [*r[:-1], [[], "a", "b"]], x),  # an empty multi-turn rollout
        lambda b, r, x: (b, [*r[:-1], [[Turn(None, "a"), Turn(None, "b")], "a", "b"]], x),
    ],
)
def test_bad_observations_raise_and_change_nothing(mutate) -> None:
    cur = make(p_replay=1.0)
    step = fill(cur, 2)
    batch = cur.next_batch(4, step)
    before = (cur.archive.to_bytes(), cur.metrics(), cur.state_dict())
    bad = mutate(batch, respond(batch, 3, step), spread_rewards(4, 3))
    with pytest.raises(ValueError):
        cur.observe(*bad, step)
    assert (cur.archive.to_bytes(), cur.metrics(), cur.state_dict()) == before


def test_bad_step_and_feedback_raise_and_change_nothing() -> None:
    cur = make(p_replay=1.0)
    step = fill(cur, 2)
    batch = cur.next_batch(4, step)
    before = (cur.archive.to_bytes(), cur.state_dict())
    args = (batch, respond(batch, 3, step), spread_rewards(4, 3))
    for kwargs in (
        {"step": -1},
        {"step": 1.5},
        {"step": step, "feedback": [["e"] * 3] * 3},
        {"step": step, "feedback": [None] * 4},
    ):
        with pytest.raises(ValueError):
            cur.observe(*args, **kwargs)
    assert (cur.archive.to_bytes(), cur.state_dict()) == before


def test_bad_arguments() -> None:
    with pytest.raises(ValueError):
        ExItCurriculum(ExItConfig(), [])
    with pytest.raises(ValueError):
        ExItCurriculum(ExItConfig(), [{"prompt": "no answer"}])
    cur = make()
    for n in (-1, 1.5, True):
        with pytest.raises(ValueError):
            cur.next_batch(n, 0)
    fill(cur, 3)
    with pytest.raises(ValueError):
        cur.next_batch(2, -1)
    cur.next_batch(2, 5)
    with pytest.raises(ValueError):
        cur.next_batch(2, 4)  # step going backwards


def test_metrics_are_flat_floats() -> None:
    cur = make(p_replay=1.0)
    fill(cur, 3)
    m = cur.metrics()
    for key in (
        "archive_size",
        "archive_rejected",
        "archive_depth_max",
        "archive_score_mean",
        "replay_fraction",
        "diverge_fraction",
        "depth_mean",
        "depth_max",
        "learnability_mean",
        "children_added",
        "children_rejected",
        "advantage_scale_mean",
        "bonus_mean",
    ):
        assert isinstance(m[key], float), key
    assert m["archive_size"] == len(cur.archive)
    assert m["replay_fraction"] == 1.0 and m["depth_mean"] >= 1.0
    # spread_rewards over 4 → S = var([0, 1/3, 2/3, 1]) = 5/36 for every group.
    assert m["learnability_mean"] == pytest.approx(5 / 36)


def test_chat_prompt_base_tasks_keep_messages() -> None:
    chat = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "2+2?"}]
    cfg = ExItConfig(min_archive_size=1, p_replay=1.0, diversity_bonus="none")
    cur = ExItCurriculum(cfg, [{"prompt": chat, "answer": 4}])
    (inst,) = cur.next_batch(1, 0)
    assert inst.prompt == chat and inst.base_id == "0"
    cur.observe([inst], [["3", "4"]], np.array([[0.0, 1.0]]), 0)
    (replay,) = cur.next_batch(1, 1)
    assert replay.prompt[0] == chat[0]
    assert "2+2?" in replay.prompt[-1]["content"]


def test_metrics_are_typed_and_read_as_flat_names() -> None:
    cur = make(p_replay=1.0)
    fill(cur, 3)
    m = cur.metrics()
    assert m.observed.children_added == m["children_added"] and m["children_added"] >= 1
    assert m.archive.archive_size == m["archive_size"] == len(cur.archive)
    assert m.batch.replay_fraction == m["replay_fraction"] == 1.0
    assert set(dict(m)) == set(m) and len(m) == len(dict(m))
    with pytest.raises(KeyError):
        m["renamed_metric"]
    resumed = make(p_replay=1.0)
    resumed.load_state_dict(cur.state_dict())
    assert resumed.metrics() == m  # the last call's metrics are part of the state
