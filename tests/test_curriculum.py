"""ExItCurriculum behaviour: selection, learnability, children, bonus, resume, bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy.stats import binomtest

from exit_verl import ExItConfig, ExItCurriculum, TaskInstance
from exit_verl.embedding import HashingEmbedder
from exit_verl.scoring import normalized_variance

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


def test_base_tasks_cycle_through_a_seeded_shuffle() -> None:
    cur = make()
    seen = [inst.base_index for inst in cur.next_batch(40, 0)]
    assert sorted(seen[:20]) == list(range(20))
    assert sorted(seen[20:]) == list(range(20))
    assert seen[:20] != seen[20:]  # each epoch is a fresh permutation
    other = ExItCurriculum(ExItConfig(min_archive_size=4), TASKS, seed=1)
    assert [i.base_index for i in other.next_batch(20, 0)] != seen[:20]


def test_no_replay_below_min_archive_size() -> None:
    cur = make(min_archive_size=1000, p_replay=1.0)
    for step in range(5):
        batch = cur.next_batch(8, step)
        assert all(b.kind == "base" and b.archive_id is None and b.depth == 0 for b in batch)
        cur.observe(batch, respond(batch, 3, step), spread_rewards(8, 3), step)
    assert len(cur.archive) == 5 * 8 * 3  # the archive fills, yet the gate holds


def test_kind_frequencies_match_probabilities() -> None:
    cur = make(p_replay=0.3, p_diverge=0.25)
    step = fill(cur, 2)
    assert len(cur.archive) >= cur.config.min_archive_size
    kinds = [b.kind for b in cur.next_batch(4000, step)]
    replays = sum(k != "base" for k in kinds)
    diverges = sum(k == "diverge" for k in kinds)
    assert binomtest(replays, len(kinds), 0.3).pvalue > 1e-4
    assert binomtest(diverges, replays, 0.25).pvalue > 1e-4


def test_replayed_prompt_contains_task_and_previous_attempt() -> None:
    cur = make(p_replay=1.0, p_diverge=0.5)
    step = fill(cur, 2)
    batch = cur.next_batch(16, step)
    assert {b.kind for b in batch} == {"improve", "diverge"}
    for inst in batch:
        history = json.loads(cur.archive.get([inst.archive_id])[0])
        text = inst.prompt[-1]["content"]
        assert history["attempt"] == inst.previous_attempt
        assert inst.previous_attempt in text
        assert TASKS[inst.base_index]["prompt"] in text
        assert inst.answer == TASKS[inst.base_index]["answer"]
        marker = "significantly different" if inst.kind == "diverge" else "Improve"
        assert marker in text


def test_children_depth_parent_and_initial_score() -> None:
    cur = make(p_replay=1.0)
    step = fill(cur, 2)
    batch = cur.next_batch(4, step)
    before = set(cur.archive.ids().tolist())
    rewards = np.array([[0.0, 0.0, 1.0, 1.0]] * 4)
    cur.observe(batch, respond(batch, 4, step), rewards, step)
    new = sorted(set(cur.archive.ids().tolist()) - before)
    assert len(new) == 16
    lineage = cur.archive.lineage(new)
    info = cur.archive.info(new)
    parents = {b.archive_id for b in batch}
    for k, child in enumerate(new):
        parent = int(lineage["parent"][k])
        assert parent in parents
        parent_depth = int(cur.archive.lineage([parent])["depth"][0])
        assert lineage["depth"][k] == parent_depth + 1
        assert info["score"][k] == pytest.approx(normalized_variance(rewards[0]))
        assert json.loads(cur.archive.get([child])[0])["attempt"].startswith(f"attempt {step}.")
    # A replayed instance's depth is its entry's lineage depth + 1.
    for b in batch:
        assert b.depth == int(cur.archive.lineage([b.archive_id])["depth"][0]) + 1


def test_zero_variance_groups_add_nothing() -> None:
    cur = make()
    batch = cur.next_batch(6, 0)
    rewards = np.array(
        [[0.5] * 4, [1.0] * 4, [0.0] * 4, [0.2, 0.2, 0.2, 0.2], [0, 1, 0, 1], [3] * 4]
    )
    cur.observe(batch, respond(batch, 4, 0), rewards, 0)
    assert len(cur.archive) == 4  # only the one informative group


def test_replayed_scores_become_new_learnability() -> None:
    cur = make(p_replay=1.0, staleness_coef=0.0)
    step = fill(cur, 2)
    batch = cur.next_batch(3, step)
    rewards = np.array([[0.0, 0.0, 0.0, 1.0], [5.0] * 4, [0.0, 1.0, 2.0, 4.0]])
    cur.observe(batch, respond(batch, 4, step), rewards, step)
    expected: dict[int, float] = {}
    for inst, row in zip(batch, rewards, strict=True):
        expected[inst.archive_id] = normalized_variance(row)  # the last group of an id wins
    ids = list(expected)
    np.testing.assert_allclose(cur.archive.info(ids)["score"], list(expected.values()))


def test_max_depth_caps_children() -> None:
    cur = make(p_replay=1.0, max_depth=2, min_archive_size=1)
    for step in range(12):
        batch = cur.next_batch(4, step)
        cur.observe(batch, respond(batch, 3, step), spread_rewards(4, 3), step)
    assert int(cur.archive.stats()["depth_max"]) <= 1  # stored depth + 1 <= max_depth
    assert max(b.depth for b in cur.next_batch(64, 12)) <= 2


def test_children_per_group_keeps_best_responses() -> None:
    cur = make(children_per_group=2)
    batch = cur.next_batch(1, 0)
    cur.observe(batch, [["low", "best", "mid", "worst"]], np.array([[0.2, 0.9, 0.5, 0.0]]), 0)
    attempts = sorted(json.loads(p)["attempt"] for p in cur.archive.get(cur.archive.ids()))
    assert attempts == ["best", "mid"]


def test_none_bonus_returns_raw_rewards_exactly() -> None:
    cur = make()
    batch = cur.next_batch(3, 0)
    rewards = np.random.default_rng(0).random((3, 5))
    shaped = cur.observe(batch, respond(batch, 5, 0), rewards, 0)
    assert shaped.dtype == np.float64 and shaped.shape == (3, 5)
    np.testing.assert_array_equal(shaped, rewards)


def test_centroid_bonus_shapes_rewards_and_learnability_uses_raw() -> None:
    cur = make(diversity_bonus="centroid", diversity_coef=1.0)
    assert isinstance(cur.embedder, HashingEmbedder)
    batch = cur.next_batch(1, 0)
    group = ["alpha beta", "alpha beta", "alpha beta gamma", "zeta eta theta iota"]
    rewards = np.array([[1.0, 0.0, 1.0, 1.0]])
    shaped = cur.observe(batch, [group], rewards, 0)
    emb = cur.embedder(group).astype(np.float64)
    dist = np.linalg.norm(emb - emb.mean(axis=0), axis=1)
    spread = (dist - dist.min()) / (dist.max() - dist.min())
    np.testing.assert_allclose(shaped[0], rewards[0] * (1.0 + spread))
    assert shaped[0, 1] == 0.0  # failures stay at zero
    assert shaped[0, 3] == pytest.approx(2.0)  # the farthest success doubles
    scores = cur.archive.info(cur.archive.ids())["score"]
    np.testing.assert_allclose(scores, normalized_variance(rewards[0]))


def test_knn_bonus_uses_archive_novelty() -> None:
    cur = make(diversity_bonus="knn", diversity_coef=0.5, novelty_k=2)
    assert cur.archive.embedding_dim == cur.embedder.dim
    batch = cur.next_batch(1, 0)
    cur.observe(batch, [["red blue", "red green"]], np.array([[0.0, 1.0]]), 0)
    batch = cur.next_batch(1, 1)
    group = ["red blue", "red blue green", "seven eight nine"]
    rewards = np.array([[1.0, 1.0, 1.0]])
    novelty = cur.archive.novelty(cur.embedder(group), k=2)
    shaped = cur.observe(batch, [group], rewards, 1)
    spread = (novelty - novelty.min()) / (novelty.max() - novelty.min())
    np.testing.assert_allclose(shaped[0], 1.0 + 0.5 * spread, rtol=1e-6)
    assert np.argmax(shaped[0]) == 2


def test_resume_gives_identical_batches(tmp_path) -> None:
    cur = make(p_replay=0.7, p_diverge=0.3, diversity_bonus="centroid")
    step = fill(cur, 3)
    state = cur.state_dict()
    other = ExItCurriculum(ExItConfig(**state["config"]), TASKS)
    other.load_state_dict(state)
    for s in range(step, step + 4):
        a, b = cur.next_batch(6, s), other.next_batch(6, s)
        assert [(x.kind, x.archive_id, x.base_index, x.prompt) for x in a] == [
            (x.kind, x.archive_id, x.base_index, x.prompt) for x in b
        ]
        responses = respond(a, 3, s)
        rewards = np.random.default_rng(s).random((6, 3))
        np.testing.assert_array_equal(
            cur.observe(a, responses, rewards, s), other.observe(b, responses, rewards, s)
        )
    assert cur.archive.ids().tolist() == other.archive.ids().tolist()


def test_load_state_rejects_mismatch() -> None:
    cur = make()
    state = cur.state_dict()
    with pytest.raises(ValueError, match="base tasks"):
        ExItCurriculum(ExItConfig(), TASKS[:5]).load_state_dict(state)
    with pytest.raises(ValueError, match="version"):
        cur.load_state_dict({**state, "version": 99})


@pytest.mark.parametrize(
    "mutate",
    [
        lambda b, r, x: (b, r[:-1], x),  # fewer groups than instances
        lambda b, r, x: (b, r, x[:, :2]),  # rewards narrower than the groups
        lambda b, r, x: (b, r, np.where(x > 0.5, np.nan, x)),  # NaN reward
        lambda b, r, x: (b, r, np.full_like(x, np.inf)),
        lambda b, r, x: (b, r, x[0]),  # 1-D rewards
        lambda b, r, x: ([*b[:-1], _with(b[-1], kind="refine")], r, x),  # unknown kind
        lambda b, r, x: ([*b[:-1], _with(b[-1], base_index=10**6)], r, x),
        lambda b, r, x: (b, [*r[:-1], "abc"], x),  # a string instead of a group
        lambda b, r, x: (b, [*r[:-1], [1, 2, 3]], x),  # non-string responses
    ],
)
def test_bad_observations_raise_and_change_nothing(mutate) -> None:
    cur = make(p_replay=1.0)
    step = fill(cur, 2)
    batch = cur.next_batch(4, step)
    before = (cur.archive.to_bytes(), cur.metrics())
    bad = mutate(batch, respond(batch, 3, step), spread_rewards(4, 3))
    with pytest.raises(ValueError):
        cur.observe(*bad, step)
    assert (cur.archive.to_bytes(), cur.metrics()) == before


def _with(inst: TaskInstance, **changes) -> TaskInstance:
    return TaskInstance(**{**inst.__dict__, **changes})


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
        cur.next_batch(2, 0)  # step going backwards


def test_metrics_are_flat_floats() -> None:
    cur = make(p_replay=1.0, diversity_bonus="centroid")
    fill(cur, 3)
    m = cur.metrics()
    for key in (
        "archive_size",
        "replay_fraction",
        "diverge_fraction",
        "depth_mean",
        "depth_max",
        "learnability_mean",
        "bonus_mean",
    ):
        assert isinstance(m[key], float), key
    assert m["archive_size"] == len(cur.archive)
    assert m["replay_fraction"] == 1.0 and m["depth_mean"] >= 1.0
    assert m["bonus_mean"] > 0.0


def test_chat_prompt_base_tasks_keep_messages() -> None:
    chat = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "2+2?"}]
    cur = ExItCurriculum(
        ExItConfig(min_archive_size=1, p_replay=1.0), [{"prompt": chat, "answer": 4}]
    )
    (inst,) = cur.next_batch(1, 0)
    assert inst.prompt == chat and inst.base_id == "0"
    cur.observe([inst], [["3", "4"]], np.array([[0.0, 1.0]]), 0)
    (replay,) = cur.next_batch(1, 1)
    assert replay.prompt[0] == chat[0]
    assert "2+2?" in replay.prompt[-1]["content"]
