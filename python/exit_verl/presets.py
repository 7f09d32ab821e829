"""The paper's ablation ladder as `ExItConfig` overrides (Tables 4–6 of arXiv 2509.04575).

Each domain lists, per column, the buffer capacity N, the minimum buffer size B_min before
any selection, the selection probability p and the self-divergence probability p_div
(0 where the column has none). The ladder: "grpo" (never replays), "curriculum" (learnability
-prioritized replay of base tasks, no self-iteration), "improve" (+ self-improve steps),
"diverge" (+ self-divergence), "exit" (+ the diversity bonus).
"""

from __future__ import annotations

from typing import Any

PRESET_NAMES = ("grpo", "curriculum", "improve", "diverge", "exit")
DOMAINS = ("math", "tool_use", "mle")

# (capacity, min_archive_size, p_replay, p_diverge) per domain and column.
PAPER_TABLE: dict[str, dict[str, tuple[int, int, float, float]]] = {
    "math": {  # Table 4
        "curriculum": (512, 128, 0.5, 0.0),
        "improve": (512, 128, 0.5, 0.0),
        "diverge": (512, 128, 0.5, 0.2),
        "exit": (512, 128, 0.5, 0.2),
    },
    "tool_use": {  # Table 5
        "curriculum": (320, 320, 0.2, 0.0),
        "improve": (640, 320, 0.5, 0.0),
        "diverge": (640, 320, 0.5, 0.2),
        "exit": (640, 320, 0.5, 0.5),
    },
    "mle": {  # Table 6
        "curriculum": (3, 3, 0.5, 0.0),
        "improve": (24, 8, 0.5, 0.0),
        "diverge": (32, 8, 0.5, 0.2),
        "exit": (24, 3, 0.5, 0.5),
    },
}

# What differs by domain besides the table: the prompt family and the self-iteration reward
# (plain rewards for math and tool use, App. A.2–A.3; max(0, Δ/Δmax) for MLE-bench, A.4).
DOMAIN_SETTINGS: dict[str, dict[str, Any]] = {
    "math": {"domain": "math", "iteration_reward": "raw"},
    "tool_use": {"domain": "generic", "iteration_reward": "raw"},
    "mle": {"domain": "mle", "iteration_reward": "improvement"},
}


# The paper's GRPO trainer resets its reference policy to the current policy every M steps,
# ref <- alpha * policy + (1 - alpha) * ref: M = 100 and alpha = 1.0 for math and tool use,
# alpha = 0.5 for MLE-bench (§5 and App. A). A verl-side setting (`exit.ref_reset_every`,
# `exit.ref_reset_alpha`), the same for every column of a domain; (M, alpha) per domain.
REFERENCE_RESET: dict[str, tuple[int, float]] = {
    "math": (100, 1.0),
    "tool_use": (100, 1.0),
    "mle": (100, 0.5),
}


def preset_values(name: str, domain: str) -> dict[str, Any]:
    """ExItConfig keyword arguments for one column of the paper's tables."""
    if name not in PRESET_NAMES:
        raise ValueError(f"unknown preset {name!r}; known: {PRESET_NAMES}")
    if domain not in DOMAINS:
        raise ValueError(f"unknown preset domain {domain!r}; known: {DOMAINS}")
    column = "exit" if name == "grpo" else name
    capacity, min_size, p_replay, p_diverge = PAPER_TABLE[domain][column]
    values: dict[str, Any] = {
        **DOMAIN_SETTINGS[domain],
        "capacity": capacity,
        "min_archive_size": min_size,
        "p_replay": p_replay,
        "p_diverge": p_diverge,
        "iterate": name not in ("grpo", "curriculum"),
        "diversity_bonus": "centroid" if name == "exit" else "none",
    }
    if name == "grpo":  # the same sizes, but no replay at all
        values.update(p_replay=0.0, p_diverge=0.0)
    return values
