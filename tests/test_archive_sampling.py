"""Sampling distributions of TaskArchive against the formulas of docs/archive.md (chi-square)."""

import numpy as np
import pytest
from archive_formulas import chi_square_ok, expected_probabilities

from exit_verl import TaskArchive

DRAWS = 200_000


def _draw_counts(arc: TaskArchive, step: int) -> np.ndarray:
    ids = arc.ids()
    drawn = arc.sample(DRAWS, step=step)  # one call: i.i.d. from P at call start
    index = {int(i): j for j, i in enumerate(ids)}
    counts = np.zeros(len(ids))
    for i, c in zip(*np.unique(drawn, return_counts=True), strict=True):
        counts[index[int(i)]] = c
    return counts


@pytest.mark.parametrize("prioritization", ["rank", "proportional", "softmax"])
@pytest.mark.parametrize("temperature", [1.0, 0.3, 2.5])
@pytest.mark.parametrize("staleness_coef", [0.0, 0.4, 1.0])
def test_sampling_matches_formula(prioritization, temperature, staleness_coef):
    rng = np.random.default_rng(5)
    arc = TaskArchive(
        64,
        prioritization=prioritization,
        temperature=temperature,
        staleness_coef=staleness_coef,
        seed=17,
    )
    # Ties on purpose: scores from a small set, added at different steps.
    scores = rng.integers(0, 6, size=30) / 5.0
    if prioritization == "softmax":
        scores = 800.0 + 3.0 * scores  # exp(score / T) alone would overflow
    steps = np.sort(rng.integers(0, 20, size=30))
    for s, t in zip(scores, steps, strict=True):
        arc.add([b"x"], [s], step=int(t))
    info = arc.info(arc.ids())
    expected = expected_probabilities(
        arc.ids(),
        info["score"],
        info["last_step"],
        25,
        prioritization,
        temperature,
        staleness_coef,
    )
    _, reported = arc.probabilities(step=25)
    np.testing.assert_allclose(reported, expected, rtol=1e-9, atol=1e-12)
    assert chi_square_ok(_draw_counts(arc, 25), expected)


def test_rank_ties_prefer_smaller_id_and_zero_staleness_is_uniform():
    arc = TaskArchive(8, staleness_coef=0.5, seed=1)
    arc.add([b"a", b"b", b"c"], [0.5, 0.5, 0.5], step=4)
    expected = 0.5 * np.array([1, 1 / 2, 1 / 3]) / (1 + 1 / 2 + 1 / 3) + 0.5 / 3
    _, p = arc.probabilities(step=4)  # step == every last_step: staleness sum 0 -> uniform
    np.testing.assert_allclose(p, expected)
    assert chi_square_ok(_draw_counts(arc, 4), expected)


def test_proportional_all_zero_is_uniform():
    arc = TaskArchive(8, prioritization="proportional", seed=2)
    arc.add([b"a", b"b", b"c", b"d"], [0.0] * 4)
    assert chi_square_ok(_draw_counts(arc, 0), np.full(4, 0.25))


def test_sample_marks_last_step_and_counts_after_drawing():
    arc = TaskArchive(8, staleness_coef=1.0, seed=3)
    arc.add([b"a", b"b"], [1.0, 0.0], step=0)
    arc.add([b"c"], [1.0], step=10)
    drawn = arc.sample(50, step=10)
    # At step 10 entry 2 has staleness 0: never drawn, even though draws mark others at 10.
    assert 2 not in set(drawn.tolist())
    info = arc.info([0, 1, 2])
    assert info["times_sampled"].sum() == 50
    assert info["times_sampled"][2] == 0
    touched = info["times_sampled"] > 0
    assert (info["last_step"][touched] == 10).all()
    with pytest.raises(ValueError):
        arc.sample(1, step=9)


def test_same_seed_same_samples_and_different_seed_differs():
    def run(seed):
        arc = TaskArchive(100, staleness_coef=0.3, seed=seed)
        arc.add([b"x"] * 50, np.linspace(0, 1, 50))
        return np.concatenate([arc.sample(20, step=s) for s in range(1, 6)])

    assert np.array_equal(run(7), run(7))
    assert not np.array_equal(run(7), run(8))


def test_softmax_is_overflow_safe_and_follows_the_maximum():
    """Scores hundreds of temperatures apart, a maximum that rises, falls and leaves: the
    reported law stays the shifted closed form exp((s - max) / T) / sum."""
    arc = TaskArchive(6, prioritization="softmax", temperature=0.5, seed=4)

    def check(step: int) -> None:
        ids, p = arc.probabilities(step=step)
        info = arc.info(ids)
        expected = expected_probabilities(
            ids, info["score"], info["last_step"], step, "softmax", 0.5, 0.0
        )
        np.testing.assert_allclose(p, expected, rtol=1e-12, atol=1e-300)

    arc.add([b"a", b"b", b"c"], [0.0, -1.0, 0.5])
    check(0)
    arc.add([b"d"], [1e4])  # exp(2e4) overflows: the reference moves up
    check(0)
    assert set(arc.sample(50).tolist()) == {3}
    arc.remove([3])  # the maximum leaves: the reference moves back down
    check(0)
    arc.update_scores([0, 1], [-1e300, 1e300])
    check(0)
    arc.add([b"e", b"f"], [1e300, -5e299])
    check(0)
    counts = _draw_counts(arc, 0)
    ids, p = arc.probabilities(step=0)
    assert chi_square_ok(counts, p)
