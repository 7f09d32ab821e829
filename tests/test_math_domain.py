"""The math domain's reward (last `\\boxed{}` answer, math-verify) and its verl wiring.

The format test loads the reward the way verl does (`reward.custom_reward_function` in a
composed verl config, `get_custom_reward_fn`) and scores responses through verl's own naive
reward manager, which calls the function from an executor thread, as the reward loop does.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from deps import need

need("math_verify")

from exit_verl.domains import math as math_domain  # noqa: E402
from exit_verl.prompts import templates_for  # noqa: E402

REWARD_MODULE = "pkg://exit_verl.verl.math_reward"

# (response, reference, expected score): the right answer in the format, equal forms of it,
# wrong answers, unformatted answers, a cut-off box.
CASES = [
    (r"7 + 5 = 12, then 12 * 3 = 36. So $\boxed{36}$.", "36", 1.0),
    (r"\boxed{36.0}", "36", 1.0),
    (r"so the answer is \boxed{\dfrac{1}{2}}", r"\frac{1}{2}", 1.0),
    (r"\boxed{0.5}", r"\frac{1}{2}", 1.0),
    (r"The answer is $\boxed{1,207}$", "1207", 1.0),
    (r"first \boxed{3}, then correcting myself: \boxed{36}", "36", 1.0),
    (r"\boxed{35}", "36", 0.0),
    (r"\boxed{36} was my guess but it is \boxed{35}", "36", 0.0),
    ("36", "36", 0.0),
    ("The answer is 36.", "36", 0.0),
    (r"\boxed{36", "36", 0.0),
    (r"\boxed{}", "36", 0.0),
    ("", "36", 0.0),
]


def test_last_boxed_reads_the_last_balanced_box() -> None:
    assert math_domain.last_boxed(r"a \boxed{1} b \boxed{\frac{1}{2}} c") == r"\frac{1}{2}"
    assert math_domain.last_boxed(r"\fbox{7}") == "7"
    assert math_domain.last_boxed(r"\boxed {x^{2}}") == "x^{2}"
    assert math_domain.last_boxed(r"\boxed{1} then \boxed{2") is None  # the last is cut off
    assert math_domain.last_boxed("no box") is None


@pytest.mark.parametrize(("response", "reference", "expected"), CASES)
def test_score_in_the_main_thread(response: str, reference: str, expected: float) -> None:
    assert math_domain.score(response, reference) == expected


def test_score_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="empty"):
        math_domain.score(r"\boxed{1}", " ")
    with pytest.raises(ValueError, match="strings"):
        math_domain.score(None, "1")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="timeout"):
        math_domain.equivalent("1", "1", timeout_s=0)


def test_the_math_prompts_ask_for_the_format_the_scorer_reads() -> None:
    templates = templates_for("math")
    assert math_domain.ANSWER_FORMAT in math_domain.system_prompt()
    assert templates.system == math_domain.system_prompt()


def _verl_reward_fn():
    need("verl")
    from hydra import compose, initialize_config_dir
    from verl.trainer import main_ppo
    from verl.trainer.ppo.reward import get_custom_reward_fn

    config_dir = str(Path(main_ppo.__file__).parent / "config")
    overrides = [
        f"reward.custom_reward_function.path={REWARD_MODULE}",
        "reward.custom_reward_function.name=compute_score",
    ]
    with initialize_config_dir(config_dir=config_dir, version_base=None):
        config = compose(config_name="ppo_trainer", overrides=overrides)
    fn = get_custom_reward_fn(config)
    assert fn is not None
    return config, fn


class _CharTokenizer:
    """Token id = character code: enough for verl's reward manager to decode responses."""

    def decode(self, ids, skip_special_tokens: bool = True) -> str:
        return "".join(chr(int(i)) for i in ids if int(i) > 0)


def test_the_format_scores_through_verls_reward_manager() -> None:
    """The correct answer in the math format scores 1, wrong or unformatted answers 0, through
    verl's loading of the custom reward function and its naive reward manager (which calls it
    from an executor thread, where math-verify's signal timeouts are unavailable)."""
    import asyncio

    import numpy as np
    import torch
    from verl import DataProto
    from verl.experimental.reward_loop.reward_manager.naive import NaiveRewardManager

    config, fn = _verl_reward_fn()

    def item(response: str, truth: str) -> DataProto:
        ids = [ord(c) for c in response] or [0]
        return DataProto.from_dict(
            tensors={
                "prompts": torch.tensor([[1, 2]]),
                "responses": torch.tensor([ids]),
                "attention_mask": torch.tensor([[1, 1] + [1 if response else 0] * len(ids)]),
            },
            non_tensors={
                "data_source": np.array(["math"], dtype=object),
                "reward_model": np.array([{"ground_truth": truth}], dtype=object),
                "extra_info": np.array([{}], dtype=object),
            },
        )

    async def run_all() -> list[float]:
        manager = NaiveRewardManager(config, _CharTokenizer(), fn)
        results = await asyncio.gather(*(manager.run_single(item(r, t)) for r, t, _ in CASES))
        return [r["reward_score"] for r in results]

    assert asyncio.run(run_all()) == [expected for _, _, expected in CASES]


def test_threads_get_math_verify_results_from_worker_processes() -> None:
    """Off the main thread, equal and unequal answers are told apart as in the main thread."""
    with ThreadPoolExecutor(4) as pool:
        got = list(pool.map(lambda case: math_domain.score(case[0], case[1]), CASES))
    assert got == [expected for _, _, expected in CASES]
    assert threading.current_thread() is threading.main_thread()


def test_a_worker_stuck_past_its_timeout_is_killed_and_replaced() -> None:
    workers = math_domain.WorkerPool(1)
    try:
        start = time.monotonic()
        assert workers.call(time.sleep, (60,), timeout_s=2.0, default="late") == "late"
        assert time.monotonic() - start < 30
        assert workers.restarts == 1
        assert workers.call(abs, (-3,), timeout_s=30.0, default=None) == 3  # a fresh pool
        assert workers.call(int, ("x",), timeout_s=30.0, default=-1) == -1  # raised: default
    finally:
        workers.close()
    with pytest.raises(ValueError):
        math_domain.WorkerPool(0)
