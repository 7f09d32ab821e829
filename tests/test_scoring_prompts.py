"""Learnability, bonus formulas, prompt rendering, config validation and the evaluator."""

from __future__ import annotations

import numpy as np
import pytest

from exit_verl import ExItConfig, evaluate_self_improvement
from exit_verl.embedding import HashingEmbedder, make_embedder
from exit_verl.prompts import clip_attempt, iteration_messages, templates_for
from exit_verl.scoring import (
    LEARNABILITY,
    centroid_bonus,
    knn_bonus,
    normalized_variance,
    range_normalize,
)


def test_learnability_by_hand() -> None:
    # [0, 2, 4] normalizes to [0, .5, 1]: variance 1/6.
    assert normalized_variance(np.array([0.0, 2.0, 4.0])) == pytest.approx(1 / 6)
    assert normalized_variance(np.array([3.0, 3.0])) == 0.0
    assert LEARNABILITY["raw_variance"](np.array([0.0, 2.0, 4.0])) == pytest.approx(8 / 3)
    assert LEARNABILITY["binary"](np.array([1.0, 0.0, 0.0, 1.0])) == pytest.approx(0.25)
    assert LEARNABILITY["binary"](np.ones(4)) == 0.0
    # Scale-free: doubling rewards keeps the normalized variance.
    r = np.random.default_rng(0).random(8)
    assert normalized_variance(2 * r + 1) == pytest.approx(normalized_variance(r))


def test_range_normalize_edges() -> None:
    np.testing.assert_allclose(range_normalize(np.array([1.0, 3.0, 2.0])), [0.0, 1.0, 0.5])
    np.testing.assert_array_equal(range_normalize(np.array([2.0, 2.0])), [0.0, 0.0])
    np.testing.assert_array_equal(range_normalize(np.array([1.0, np.inf, 3.0])), [0.0, 1.0, 1.0])


def test_centroid_bonus_by_hand() -> None:
    # Points 0, 0, 3 on a line: centroid 1, distances 1, 1, 2 -> spread 0, 0, 1.
    emb = np.array([[0.0, 0.0], [0.0, 0.0], [3.0, 0.0]])
    rewards = np.array([1.0, 0.5, 0.8])
    np.testing.assert_allclose(centroid_bonus(rewards, emb, 0.5), [1.0, 0.5, 0.8 * 1.5])
    np.testing.assert_allclose(centroid_bonus(np.zeros(3), emb, 0.5), np.zeros(3))


def test_knn_bonus_by_hand() -> None:
    np.testing.assert_allclose(
        knn_bonus(np.array([1.0, 1.0, 2.0]), np.array([0.1, 0.3, 0.2]), 1.0), [1.0, 2.0, 3.0]
    )


def test_clip_keeps_head_and_tail() -> None:
    text = "HEAD" + "x" * 5000 + "answer: 42"
    clipped = clip_attempt(text, 200)
    assert len(clipped) == 200
    assert clipped.startswith("HEAD") and clipped.endswith("answer: 42")
    assert clip_attempt("short", 200) == "short"


def test_templates() -> None:
    t = templates_for("math", improve="Fix {attempt} for {task}")
    msgs = iteration_messages("T?", "A!", "improve", t, 100)
    assert msgs[-1]["content"] == "Fix A! for T?"
    assert msgs[0]["role"] == "system"
    assert "{" not in iteration_messages("x {y}", "{z}", "diverge", t, 100)[-1]["content"][:5]
    with pytest.raises(ValueError):
        templates_for("math", improve="no placeholders")
    with pytest.raises(ValueError):
        templates_for("poetry")
    with pytest.raises(ValueError):
        iteration_messages("T", "A", "base", t, 100)


@pytest.mark.parametrize(
    "bad",
    [
        {"p_replay": 1.5},
        {"p_diverge": -0.1},
        {"capacity": 0},
        {"prioritization": "fifo"},
        {"temperature": 0.0},
        {"diversity_bonus": "max"},
        {"learnability": "entropy"},
        {"max_depth": 0},
        {"children_per_group": -1},
    ],
)
def test_config_rejects_bad_values(bad) -> None:
    with pytest.raises(ValueError):
        ExItConfig(**bad)


def test_config_dict_round_trip() -> None:
    cfg = ExItConfig(p_replay=0.25, diversity_bonus="both")
    assert ExItConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(KeyError):
        ExItConfig.from_dict({"p_replay": 0.1, "typo": 1})


def test_hashing_embedder() -> None:
    emb = HashingEmbedder(64)(["a b c", "a b c", "x y z", ""])
    assert emb.shape == (4, 64) and emb.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, rtol=1e-6)
    assert emb[0] @ emb[1] == pytest.approx(1.0) and emb[0] @ emb[2] < 0.9
    with pytest.raises(ValueError):
        make_embedder("word2vec")


def test_evaluator_improves_step_by_step() -> None:
    tasks = [{"prompt": f"count to {n}", "answer": n} for n in (3, 5)]

    def generate(prompts):  # each iteration adds one to the number in the previous attempt
        out = []
        for p in prompts:
            text = p[-1]["content"]
            prev = (
                int(text.split("previous attempt at this problem:\n")[1].split()[0])
                if ("previous attempt" in text)
                else 0
            )
            out.append(str(prev + 1))
        return out

    def reward(task, answer):
        return 1.0 if int(answer) == task["answer"] else 0.0

    seen = []
    result = evaluate_self_improvement(
        generate, reward, tasks, 5, on_step=lambda step, mean: seen.append(step)
    )
    assert seen == list(range(6))
    assert result["mean"] == [0.0, 0.0, 0.5, 0.0, 0.5, 0.0]
    assert result["best_so_far"] == [0.0, 0.0, 0.5, 0.5, 1.0, 1.0]
    assert np.array(result["scores"]).shape == (2, 6)
    with pytest.raises(ValueError):
        evaluate_self_improvement(generate, reward, tasks, -1)
    with pytest.raises(ValueError):
        evaluate_self_improvement(lambda p: ["1"], reward, tasks, 1)


def test_config_is_an_omegaconf_structured_config() -> None:
    omegaconf = pytest.importorskip("omegaconf")
    merged = omegaconf.OmegaConf.merge(
        omegaconf.OmegaConf.structured(ExItConfig), {"p_replay": 0.3, "diversity_bonus": "knn"}
    )
    cfg = omegaconf.OmegaConf.to_object(merged)
    assert isinstance(cfg, ExItConfig) and cfg.p_replay == 0.3 and cfg.diversity_bonus == "knn"
    with pytest.raises(ValueError):
        omegaconf.OmegaConf.to_object(omegaconf.OmegaConf.merge(merged, {"p_replay": 2.0}))
