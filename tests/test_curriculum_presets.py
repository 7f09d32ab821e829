"""`ExItConfig.preset`: the paper's ablation ladder, Tables 4–6 of arXiv 2509.04575 v1,
written out here by hand (N, B_min, p, p_div; "–" in the paper is 0)."""

from __future__ import annotations

import pytest

from exit_verl import ExItConfig

TABLE = {
    ("math", "curriculum"): (512, 128, 0.5, 0.0),
    ("math", "improve"): (512, 128, 0.5, 0.0),
    ("math", "diverge"): (512, 128, 0.5, 0.2),
    ("math", "exit"): (512, 128, 0.5, 0.2),
    ("tool_use", "curriculum"): (320, 320, 0.2, 0.0),
    ("tool_use", "improve"): (640, 320, 0.5, 0.0),
    ("tool_use", "diverge"): (640, 320, 0.5, 0.2),
    ("tool_use", "exit"): (640, 320, 0.5, 0.5),
    ("mle", "curriculum"): (3, 3, 0.5, 0.0),
    ("mle", "improve"): (24, 8, 0.5, 0.0),
    ("mle", "diverge"): (32, 8, 0.5, 0.2),
    ("mle", "exit"): (24, 3, 0.5, 0.5),
}


@pytest.mark.parametrize(("domain", "name"), sorted(TABLE))
def test_presets_are_the_papers_columns(domain: str, name: str) -> None:
    cfg = ExItConfig.preset(name, domain)
    capacity, min_size, p_replay, p_diverge = TABLE[domain, name]
    assert cfg.capacity == capacity and cfg.min_archive_size == min_size
    assert cfg.p_replay == p_replay and cfg.p_diverge == p_diverge
    assert cfg.diversity_bonus == ("centroid" if name == "exit" else "none")
    assert cfg.iterate is (name != "curriculum")
    # Every column: the paper's buffer law and admission, no staleness.
    assert cfg.prioritization == "softmax" and cfg.admission == "not_below_min"
    assert cfg.staleness_coef == 0.0
    assert cfg.iteration_reward == ("improvement" if domain == "mle" else "raw")
    assert cfg.domain == {"math": "math", "tool_use": "generic", "mle": "mle"}[domain]


@pytest.mark.parametrize("domain", ["math", "tool_use", "mle"])
def test_grpo_never_replays(domain: str) -> None:
    cfg = ExItConfig.preset("grpo", domain)
    assert cfg.p_replay == 0.0 and cfg.p_diverge == 0.0 and cfg.diversity_bonus == "none"
    assert cfg.iterate is False


def test_default_config_is_the_math_exit_column() -> None:
    assert ExItConfig() == ExItConfig.preset("exit", "math")
    cfg = ExItConfig()
    assert (cfg.capacity, cfg.min_archive_size, cfg.p_replay, cfg.p_diverge) == (512, 128, 0.5, 0.2)
    assert cfg.diversity_bonus == "centroid" and cfg.iterate
    assert cfg.learnability == "variance" and cfg.reward_range == (0.0, 1.0)
    assert cfg.min_child_learnability is None and cfg.max_depth is None


def test_preset_overrides_and_bad_names() -> None:
    cfg = ExItConfig.preset("diverge", "tool_use", embedder="hashing", capacity=400)
    assert cfg.capacity == 400 and cfg.p_diverge == 0.2 and cfg.embedder == "hashing"
    with pytest.raises(ValueError, match="min_archive_size must be in"):
        ExItConfig.preset("diverge", "tool_use", capacity=64)  # B_min = 320 would never open
    for name, domain in (("exit", "chess"), ("full", "math")):
        with pytest.raises(ValueError):
            ExItConfig.preset(name, domain)
    with pytest.raises(KeyError):
        ExItConfig.preset("exit", "math", capacitee=3)
