"""Learnability, iteration rewards, bonus formulas, prompts, histories and config checks.

Reference values are worked out by hand in the comments.
"""

from __future__ import annotations

import numpy as np
import pytest
from deps import need

from exit_verl import ExItConfig, History, Turn
from exit_verl.bonus import (
    BONUSES,
    BonusGroup,
    centroid_distances,
    diversity_weights,
    range_normalize,
)
from exit_verl.embedding import HashingEmbedder, make_embedder
from exit_verl.prompts import TEMPLATES, fill, render_messages, templates_for
from exit_verl.scoring import ITERATION_REWARDS, LEARNABILITY, quality, rescale

# -- learnability ---------------------------------------------------------------------------


def test_variance_uses_the_fixed_range_not_the_group() -> None:
    variance = LEARNABILITY["variance"]
    # 0.50 and 0.51: mean 0.505, deviations ±0.005 → variance 2.5e-5 (not the min-max 0.25).
    assert variance(np.array([0.50, 0.51])) == pytest.approx(2.5e-5)
    assert LEARNABILITY["minmax_variance"](np.array([0.50, 0.51])) == pytest.approx(0.25)
    # Population variance (ddof 0): [0, 1] → 0.25; [0, 0, 0, 1] → p(1 − p) = 3/16.
    assert variance(np.array([0.0, 1.0])) == pytest.approx(0.25)
    assert variance(np.array([0.0, 0.0, 0.0, 1.0])) == pytest.approx(3 / 16)
    # G = 8, 0/1 rewards: k successes → k(8 − k)/64.
    for k, expected in [(0, 0), (1, 7), (2, 12), (3, 15), (4, 16), (7, 7), (8, 0)]:
        group = np.array([1.0] * k + [0.0] * (8 - k))
        assert variance(group) == pytest.approx(expected / 64)


def test_variance_rescales_by_the_range_and_clips() -> None:
    variance = LEARNABILITY["variance"]
    # Range (0, 10): [2, 6] → [0.2, 0.6] → variance 0.04.
    assert variance(np.array([2.0, 6.0]), (0.0, 10.0)) == pytest.approx(0.04)
    # Clipped to [0, 1]: [−5, 20] with range (0, 10) → [0, 1] → 0.25.
    assert variance(np.array([-5.0, 20.0]), (0.0, 10.0)) == pytest.approx(0.25)
    assert variance(np.array([0.3, 0.3, 0.3])) == 0.0
    with pytest.raises(ValueError):
        variance(np.array([0.0, 1.0]), (1.0, 1.0))


def test_other_learnability_functions_by_hand() -> None:
    # [0, 2, 4] min-max normalizes to [0, .5, 1]: variance 1/6; raw variance 8/3.
    assert LEARNABILITY["minmax_variance"](np.array([0.0, 2.0, 4.0])) == pytest.approx(1 / 6)
    assert LEARNABILITY["minmax_variance"](np.array([3.0, 3.0])) == 0.0
    assert LEARNABILITY["raw_variance"](np.array([0.0, 2.0, 4.0])) == pytest.approx(8 / 3)
    assert LEARNABILITY["binary"](np.array([1.0, 0.0, 0.0, 1.0])) == pytest.approx(0.25)
    assert LEARNABILITY["binary"](np.ones(4)) == 0.0


def test_rescale_and_quality() -> None:
    r = np.array([-2.0, 0.0, 5.0, 12.0])
    np.testing.assert_allclose(rescale(r, (0.0, 10.0)), [-0.2, 0.0, 0.5, 1.2])
    np.testing.assert_allclose(quality(r, (0.0, 10.0)), [0.0, 0.0, 0.5, 1.0])
    exact = np.array([0.1, 0.7])
    assert rescale(exact).tolist() == [0.1, 0.7]  # the unit range leaves rewards untouched


# -- iteration rewards ----------------------------------------------------------------------


def test_improvement_reward_by_hand() -> None:
    improvement = ITERATION_REWARDS["improvement"]
    r = np.array([0.0, 0.5, 0.75, 1.0])
    # r_prev = 0.5: max(0, (r − 0.5) / 0.5) = [0, 0, 0.5, 1].
    np.testing.assert_allclose(improvement(r, "improve", 0.5), [0.0, 0.0, 0.5, 1.0])
    # r_prev = 0.2: (0.5 − 0.2)/0.8 = 0.375, (0.75 − 0.2)/0.8 = 0.6875.
    np.testing.assert_allclose(improvement(r, "improve", 0.2), [0.0, 0.375, 0.6875, 1.0])
    # r_prev = 1: only keeping the maximum scores.
    np.testing.assert_array_equal(
        improvement(np.array([1.0, 0.99, 0.0]), "improve", 1.0), [1, 0, 0]
    )
    # Base and diverge steps, and unknown previous rewards, keep the rescaled reward.
    for kind, prev in (("base", None), ("diverge", 0.5), ("improve", None)):
        np.testing.assert_array_equal(improvement(r, kind, prev), r)
    np.testing.assert_array_equal(ITERATION_REWARDS["raw"](r, "improve", 0.9), r)


# -- diversity bonus ------------------------------------------------------------------------


def test_centroid_weights_by_hand() -> None:
    # Points −3, −1, 2, 6 on a line: centroid 1, distances 4, 2, 1, 5 → (d − 1)/(5 − 1).
    # (Eq. 6 as printed, d / (5 − 1), would give 1, 0.5, 0.25, 1.25.)
    emb = np.array([[-3.0, 0.0], [-1.0, 0.0], [2.0, 0.0], [6.0, 0.0]])
    np.testing.assert_allclose(centroid_distances(emb), [4.0, 2.0, 1.0, 5.0])
    rewards = np.array([1.0, 0.0, 1.0, 1.0])
    shaped, scale = BONUSES["centroid"].fn(BonusGroup(rewards, embeddings=emb))
    np.testing.assert_allclose(scale, [0.75, 0.25, 0.0, 1.0])
    np.testing.assert_array_equal(shaped, rewards)  # the paper's bonus leaves rewards alone


def test_centroid_weights_stay_finite_when_distances_tie() -> None:
    square = np.array([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0], [0.0, -1.0]])  # all at distance 1
    same = np.ones((5, 3))
    for emb in (square, same, np.array([[0.3, 0.4]])):  # ..., identical rows, G = 1
        _, scale = BONUSES["centroid"].fn(BonusGroup(np.ones(len(emb)), embeddings=emb))
        assert scale.tolist() == [1.0] * len(emb)
    # G = 2: both points are equally far from their midpoint, for any embedding.
    rng = np.random.default_rng(0)
    for _ in range(20):
        emb = rng.normal(size=(2, 16)).astype(np.float32)
        assert diversity_weights(centroid_distances(emb)).tolist() == [1.0, 1.0]


def test_no_bonus_is_exactly_one_and_unchanged_rewards() -> None:
    rewards = np.array([0.3, 0.0, 1.0])
    shaped, scale = BONUSES["none"].fn(BonusGroup(rewards))
    assert scale.tolist() == [1.0, 1.0, 1.0]
    assert shaped.tolist() == rewards.tolist()


def grpo_advantages(rewards: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    """GRPO's group-relative advantage (r − mean) / (std + eps), std with ddof 1 as in verl."""
    return (rewards - rewards.mean()) / (rewards.std(ddof=1) + eps)


def test_advantage_side_bonus_gives_solved_groups_no_gradient_reward_side_does() -> None:
    emb = np.array([[-3.0, 0.0], [-1.0, 0.0], [2.0, 0.0], [6.0, 0.0]])
    solved = np.ones(4)
    shaped, scale = BONUSES["centroid"].fn(BonusGroup(solved, embeddings=emb))
    np.testing.assert_array_equal(grpo_advantages(shaped) * scale, np.zeros(4))
    # Reward side (ours): r · (1 + 0.5 · s), s = [0.75, 0.25, 0, 1] → [1.375, 1.125, 1, 1.5].
    shaped, scale = BONUSES["centroid_reward"].fn(BonusGroup(solved, embeddings=emb, coef=0.5))
    np.testing.assert_allclose(shaped, [1.375, 1.125, 1.0, 1.5])
    assert scale.tolist() == [1.0] * 4
    assert np.abs(grpo_advantages(shaped)).max() > 1.0  # an all-correct group gets pushed
    failed = BONUSES["centroid_reward"].fn(BonusGroup(np.zeros(4), embeddings=emb, coef=0.5))[0]
    assert failed.tolist() == [0.0] * 4  # failures stay at zero


def test_knn_bonuses_by_hand() -> None:
    novelty = np.array([0.1, 0.3, 0.2])  # range-normalized: 0, 1, 0.5
    shaped, scale = BONUSES["knn_reward"].fn(
        BonusGroup(np.array([1.0, 1.0, 2.0]), novelty=novelty, coef=1.0)
    )
    np.testing.assert_allclose(shaped, [1.0, 2.0, 3.0])
    _, scale = BONUSES["knn"].fn(BonusGroup(np.ones(3), novelty=novelty))
    np.testing.assert_allclose(scale, [0.0, 1.0, 0.5])
    _, scale = BONUSES["knn"].fn(BonusGroup(np.ones(3), novelty=np.full(3, np.inf)))
    assert scale.tolist() == [1.0] * 3  # empty archive: no information


def test_range_normalize_edges() -> None:
    np.testing.assert_allclose(range_normalize(np.array([1.0, 3.0, 2.0])), [0.0, 1.0, 0.5])
    np.testing.assert_array_equal(range_normalize(np.array([2.0, 2.0])), [0.0, 0.0])
    np.testing.assert_array_equal(range_normalize(np.array([1.0, np.inf, 3.0])), [0.0, 1.0, 1.0])


# -- prompts --------------------------------------------------------------------------------


def test_prompts_show_the_whole_attempt_and_the_sections() -> None:
    t = templates_for("math")
    attempt = "step " * 5000 + "so the answer is \\boxed{42}"  # 25k characters: no clipping
    for kind in ("improve", "diverge"):
        messages = render_messages("What is 6 * 7?", attempt, kind, t)
        assert messages[0] == {"role": "system", "content": t.system}
        text = messages[-1]["content"]
        assert attempt in text and "What is 6 * 7?" in text
        assert (
            text.index("## Request")
            < text.index("What is 6 * 7?")
            < text.index("## Current response")
            < text.index(attempt)
        )
    diverge = render_messages("T", "ATTEMPT-X", "diverge", t)[-1]["content"]
    assert "significantly" in diverge
    # The required format, in order: summary of the current approach, a different
    # approach, the new response.
    first = diverge.index("1. Summary of the current approach")
    second = diverge.index("2. A different approach")
    third = diverge.index("3. New response")
    assert diverge.index("ATTEMPT-X") < first < second < third
    assert "Required format" not in render_messages("T", "A", "improve", t)[-1]["content"]


def test_math_and_generic_share_the_structure_and_mle_has_an_error_slot() -> None:
    assert TEMPLATES["math"].improve == TEMPLATES["generic"].improve
    assert TEMPLATES["math"].diverge == TEMPLATES["generic"].diverge
    assert TEMPLATES["generic"].system is None and "boxed" in TEMPLATES["math"].system
    mle = templates_for("mle")
    text = render_messages("Train it.", "code()", "improve", mle, error="Traceback: KeyError")[-1]
    assert "## Error trace\nTraceback: KeyError" in text["content"]
    assert "## Error trace\n(none)" in render_messages("T", "c", "diverge", mle)[-1]["content"]


def test_templates_overrides_and_placeholders() -> None:
    t = templates_for("math", improve="Fix {attempt} for {task}")
    assert render_messages("T?", "A!", "improve", t)[-1]["content"] == "Fix A! for T?"
    # One pass: braces in the task or the attempt are kept as they are.
    assert fill("{task}|{attempt}", "x {attempt} y", "{task}") == "x {attempt} y|{task}"
    assert templates_for("generic", system="Be brief.").system == "Be brief."
    with pytest.raises(ValueError):
        templates_for("math", improve="no placeholders")
    with pytest.raises(ValueError):
        templates_for("poetry")
    with pytest.raises(ValueError):
        render_messages("T", "A", "base", t)


def test_chat_prompt_and_multi_turn_rendering() -> None:
    t = templates_for("generic")
    chat = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "2+2?"}]
    messages = render_messages(chat, "5", "improve", t)
    assert messages[0] == chat[0] and "2+2?" in messages[-1]["content"]
    context = (Turn(None, "look up x"), Turn("x = 3", "compute y"))
    messages = render_messages("Task", "y = 7", "improve", t, context=context, request="y is 6?")
    roles = [m["role"] for m in messages]
    assert roles == ["user", "assistant", "user", "assistant", "user"]
    assert [m["content"] for m in messages[:4]] == ["Task", "look up x", "x = 3", "compute y"]
    assert "y is 6?" in messages[-1]["content"] and "y = 7" in messages[-1]["content"]
    with pytest.raises(ValueError):
        render_messages("Task", "y", "improve", t, context=context)  # request missing


# -- histories ------------------------------------------------------------------------------


def test_history_round_trip_and_accessors() -> None:
    h = History(
        3,
        (Turn(None, "a1", 0.25), Turn("obs 2", "a2 ünïcode", None, "err"), Turn("o3", "a3", 1.0)),
        "diverge",
    )
    assert History.from_bytes(h.to_bytes()) == h
    assert h.attempt == "a3" and h.reward == 1.0 and h.context == h.turns[:2]
    assert h.cut(2).turns == h.turns[:2] and h.cut(2).reward is None
    assert [p.turns for p in h.prefixes()] == [h.turns[:1], h.turns[:2], h.turns]
    assert [len(p.turns) for p in h.prefixes(2)] == [2, 3]
    base = History(0)
    assert base.attempt is None and base.reward is None
    assert History.from_bytes(base.to_bytes()) == base


@pytest.mark.parametrize(
    "data",
    [
        b"not json",
        b'{"v": 99, "base": 0, "kind": "base", "turns": []}',
        b'{"v": 1, "base": -1, "kind": "base", "turns": []}',
        b'{"v": 1, "base": 0, "kind": "refine", "turns": []}',
        b'{"v": 1, "base": 0, "kind": "base", "turns": [{"response": "x"}]}',
        b'{"v": 1, "base": 0, "kind": "base", "turns": [{"observation": "o", "response": "x",'
        b' "reward": null}]}',
        b'{"v": 1, "base": 0, "kind": "base", "turns": [{"observation": null, "response": "x",'
        b' "reward": 2.0}]}',
        b'{"v": 1, "base": 0, "kind": "base", "turns": [], "extra": 1}',
        b"\xff\xfe",
    ],
)
def test_history_from_bytes_rejects_malformed(data: bytes) -> None:
    with pytest.raises(ValueError):
        History.from_bytes(data)


# -- config ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "bad",
    [
        {"p_replay": 1.5},
        {"p_diverge": -0.1},
        {"capacity": 0},
        {"min_archive_size": 0},
        {"prioritization": "fifo"},
        {"admission": "sometimes"},
        {"temperature": 0.0},
        {"diversity_bonus": "max"},
        {"diversity_bonus": "both"},
        {"learnability": "entropy"},
        {"iteration_reward": "delta"},
        {"reward_range": (1.0, 0.0)},
        {"reward_range": (0.0, float("inf"))},
        {"max_depth": 0},
        {"children_per_group": -1},
        {"child_selection": "worst"},
        {"embedder": ""},
        {"domain": "poetry"},
        {"iterate": False},  # with the default p_diverge 0.2
        {"iterate": False, "p_diverge": 0.0, "diversity_bonus": "knn"},
    ],
)
def test_config_rejects_bad_values(bad) -> None:
    with pytest.raises(ValueError):
        ExItConfig(**bad)


def test_config_dict_round_trip() -> None:
    cfg = ExItConfig(p_replay=0.25, diversity_bonus="knn_reward", reward_range=(0.0, 10.0))
    assert ExItConfig.from_dict(cfg.to_dict()) == cfg
    assert cfg.to_dict()["reward_range"] == [0.0, 10.0]  # plain YAML / JSON
    with pytest.raises(KeyError):
        ExItConfig.from_dict({"p_replay": 0.1, "typo": 1})
    with pytest.raises(KeyError):
        ExItConfig.from_dict({"attempt_clip_chars": 2000})  # removed: no clipping anywhere


def test_config_is_an_omegaconf_structured_config() -> None:
    omegaconf = need("omegaconf")
    merged = omegaconf.OmegaConf.merge(
        omegaconf.OmegaConf.structured(ExItConfig),
        {"p_replay": 0.3, "diversity_bonus": "knn", "reward_range": [0, 10]},
    )
    cfg = omegaconf.OmegaConf.to_object(merged)
    assert isinstance(cfg, ExItConfig) and cfg.p_replay == 0.3 and cfg.diversity_bonus == "knn"
    assert cfg.reward_range == (0.0, 10.0)
    with pytest.raises(ValueError):
        omegaconf.OmegaConf.to_object(omegaconf.OmegaConf.merge(merged, {"p_replay": 2.0}))


def test_hashing_embedder() -> None:
    emb = HashingEmbedder(64)(["a b c", "a b c", "x y z", ""])
    assert emb.shape == (4, 64) and emb.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, rtol=1e-6)
    assert emb[0] @ emb[1] == pytest.approx(1.0) and emb[0] @ emb[2] < 0.9
    with pytest.raises(ValueError):
        make_embedder("")


def test_bonuses_declare_truthfully_whether_they_keep_rewards() -> None:
    """verl's group filter agrees with training only for bonuses that leave rewards alone; the
    declaration it relies on is checked against what each bonus returns."""
    from exit_verl.bonus import BONUSES, BonusGroup

    rng = np.random.default_rng(0)
    for name, bonus in BONUSES.items():
        changed = False
        for _ in range(20):
            group = BonusGroup(
                rewards=rng.integers(0, 2, size=6).astype(float) + 0.5,
                embeddings=rng.normal(size=(6, 8)),
                novelty=rng.random(6),
                coef=0.5,
            )
            rewards, _ = bonus.fn(group)
            changed |= not np.array_equal(rewards, group.rewards)
        assert changed is not bonus.keeps_rewards, name
    assert {n for n, b in BONUSES.items() if b.keeps_rewards} == {"none", "centroid", "knn"}
