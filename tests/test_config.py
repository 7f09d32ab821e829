"""`ExItConfig` validation: every setting is checked where the config is built, so a bad value
fails at construction, before a curriculum, an archive or verl is touched."""

from __future__ import annotations

import math

import pytest

from exit_verl import ExItConfig, TaskArchive
from exit_verl.config import MAX_ARCHIVE_CAPACITY


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ({"temperature": math.inf}, "temperature must be finite"),
        ({"temperature": 0.0}, "temperature must be > 0"),
        ({"temperature": math.nan}, "temperature must be finite"),
        ({"diversity_coef": math.nan}, "diversity_coef must be finite"),
        ({"diversity_coef": -0.1}, "diversity_coef must be >= 0"),
        ({"capacity": 5e9}, "capacity must be an integer"),
        ({"capacity": MAX_ARCHIVE_CAPACITY + 1}, "capacity must be in"),
        ({"capacity": 0}, "capacity must be in"),
        ({"capacity": True}, "capacity must be an integer"),
        ({"min_child_learnability": math.nan}, "min_child_learnability must be finite"),
        ({"min_child_learnability": "0.1"}, "min_child_learnability must be a number"),
        ({"min_archive_size": 513}, r"min_archive_size must be in \[1, 512\]"),
        ({"min_archive_size": 4.0}, "min_archive_size must be an integer"),
        ({"p_replay": math.nan}, "p_replay must be finite"),
        ({"p_diverge": 1.5}, "p_diverge must be >= 0.0 and <= 1.0"),
        ({"staleness_coef": -math.inf}, "staleness_coef must be finite"),
        ({"novelty_k": 0}, "novelty_k must be in"),
        ({"children_per_group": -1}, "children_per_group must be >= 0"),
        ({"max_depth": 0}, "max_depth must be >= 1"),
        ({"iterate": 1}, "iterate must be true or false"),
        ({"reward_range": (0.0, math.inf)}, "reward_range"),
        ({"prioritization": "greedy"}, "prioritization must be one of"),
    ],
)
def test_bad_settings_are_refused_at_construction(setting, message) -> None:
    with pytest.raises(ValueError, match=message):
        ExItConfig(**setting)
    cfg = ExItConfig()
    with pytest.raises(ValueError, match=message):
        cfg.__class__.from_dict({**cfg.to_dict(), **setting})


def test_capacity_bound_is_the_archives() -> None:
    with pytest.raises(ValueError, match=str(MAX_ARCHIVE_CAPACITY)):
        TaskArchive(MAX_ARCHIVE_CAPACITY + 1)
    ExItConfig(capacity=MAX_ARCHIVE_CAPACITY, min_archive_size=1)  # the largest is accepted
