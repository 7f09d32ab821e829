"""The verl examples: data preprocessors (row layout, answers; no download) and the launch
scripts' overrides, composed with verl's own config schema and checked as verl's driver does."""

from __future__ import annotations

import importlib.util
import re
import shlex
import sys
from pathlib import Path
from types import ModuleType

import pytest
from deps import need

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
PREPROCESS = EXAMPLES / "data_preprocess"
MATH_REWARD = "pkg://exit_verl.verl.math_reward"
# Values for the shell variables of the launch scripts (an unknown variable fails the test).
SHELL_VALUES = {
    "DATA": "/data",
    "MODEL": "org/model",
    "GROUP": "8",
    "OUT": "/out",
    "ARM": "improve",
    "SEED": "1",
    "STEPS": "300",
    "VAL_TEMPERATURE": "0.7",
    "NGPUS": "8",
}


def load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"verl_example_{name}", PREPROCESS / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve annotations through sys.modules
    spec.loader.exec_module(module)
    return module


def _system_prompt() -> str:
    from exit_verl.domains.math import system_prompt

    return system_prompt()


def test_gsm8k_rows_ask_for_the_boxed_answer_the_reward_reads() -> None:
    gsm8k = load("gsm8k")
    example = {"question": "How many?", "answer": "3 + 4 = <<3+4=7>>7\n#### 1,207"}
    row = gsm8k.to_row(example, "train", 5)
    assert row["reward_model"] == {"style": "rule", "ground_truth": "1207"}
    system, user = row["prompt"]
    assert system == {"role": "system", "content": _system_prompt()}
    assert user == {"role": "user", "content": "How many?"}
    assert "####" not in str(row["prompt"])
    assert row["data_source"] == "exit_verl/math/gsm8k" and row["extra_info"]["index"] == 5
    with pytest.raises(ValueError, match="####"):
        gsm8k.final_answer("no marker here")


def test_paper_math_rows_carry_bare_reference_answers() -> None:
    paper = load("math_paper")
    train = paper.TRAIN_SET
    row = paper.to_row({"problem": "P?", "solution": r"So $\boxed{\frac{1}{2}}$."}, train, "t", 3)
    assert row["reward_model"]["ground_truth"] == r"\frac{1}{2}"
    assert row["prompt"][0] == {"role": "system", "content": _system_prompt()}
    assert row["prompt"][1] == {"role": "user", "content": "P?"}
    assert row["data_source"] == "exit_verl/math/t"
    amc = paper.TEST_SETS["amc"]
    assert (
        paper.to_row({"problem": "Q", "answer": 42.0}, amc, "amc", 0)["reward_model"][
            "ground_truth"
        ]
        == "42"
    )
    olympiad = paper.TEST_SETS["olympiadbench"]
    got = paper.to_row({"question": "Q", "final_answer": ["$x^2$"]}, olympiad, "olympiadbench", 0)
    assert got["reward_model"]["ground_truth"] == "x^2"
    with pytest.raises(ValueError, match="one reference answer"):
        paper.to_row({"question": "Q", "final_answer": ["1", "2"]}, olympiad, "olympiadbench", 0)
    with pytest.raises(ValueError, match="boxed"):
        paper.to_row({"problem": "P", "solution": "no box"}, train, "train", 0)
    with pytest.raises(KeyError, match="problem"):
        paper.to_row({"question": "Q", "answer": "1"}, paper.TEST_SETS["math500"], "math500", 0)
    assert set(paper.TEST_SETS) == {
        "math500",
        "amc",
        "aime24",
        "aime25",
        "minerva",
        "olympiadbench",
    }


def test_paper_math_training_draw_is_seeded_and_complete() -> None:
    paper = load("math_paper")
    examples = [
        {"problem": f"P{i}", "solution": rf"\boxed{{{i}}}", "level": f"Level {1 + i % 5}"}
        for i in range(40)
    ] + [{"problem": "bad", "solution": "no answer", "level": "Level 3"}]
    rows = paper.train_rows(examples, 12, seed=0, levels={"Level 3", "Level 4"})
    assert len(rows) == 12 and len({r["prompt"][1]["content"] for r in rows}) == 12
    assert all(int(r["reward_model"]["ground_truth"]) % 5 in (2, 3) for r in rows)
    assert rows == paper.train_rows(examples, 12, seed=0, levels={"Level 3", "Level 4"})
    assert rows != paper.train_rows(examples, 12, seed=1, levels={"Level 3", "Level 4"})
    with pytest.raises(ValueError, match="usable"):
        paper.train_rows(examples, 17, seed=0, levels={"Level 3", "Level 4"})
    assert paper.TRAIN_PROBLEMS == 1280


def _script_overrides(script: str) -> list[str]:
    """The hydra overrides of the script's verl command, shell variables filled in."""
    text = (EXAMPLES / script).read_text().replace("\\\n", " ")
    command = next(line for line in text.splitlines() if "verl.trainer.main_ppo" in line)
    command = command.replace('"$@"', "")
    command = command.replace('$(basename "$MODEL")', "model")

    def value(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        if name not in SHELL_VALUES:
            raise AssertionError(f"{script}: add a test value for ${name}")
        return SHELL_VALUES[name]

    command = re.sub(r"\$\{(\w+)\}|\$(\w+)", value, command)
    args = shlex.split(command)
    return [a for a in args[args.index("verl.trainer.main_ppo") + 1 :] if "=" in a]


def _compose(overrides: list[str]):
    from hydra import compose, initialize_config_dir
    from verl.trainer import main_ppo

    config_dir = str(Path(main_ppo.__file__).parent / "config")
    with initialize_config_dir(config_dir=config_dir, version_base=None):
        return compose(config_name="ppo_trainer", overrides=overrides)


@pytest.mark.parametrize("script", ["math_exit_grpo.sh", "gsm8k_exit_grpo.sh", "gpu_smoke.sh"])
def test_example_commands_fit_verls_schema_and_use_the_math_reward(script: str) -> None:
    """Every override of each launch script is a key of verl's config (hydra refuses unknown
    keys), verl's own config validation passes, the plugin's settings checks pass, and the
    reward is the math domain's (the module the format test scores through verl)."""
    need("verl")
    from verl.utils.config import validate_config

    from exit_verl.verl.settings import exit_settings

    config = _compose(_script_overrides(script))
    assert config.trainer.v1.trainer_mode == "exit"
    validate_config(config, use_reference_policy=True, use_critic=False)
    settings = exit_settings(config)
    assert config.reward.custom_reward_function.path == MATH_REWARD
    assert config.reward.custom_reward_function.name == "compute_score"
    if script != "gpu_smoke.sh":  # the smoke run keeps validation short
        assert settings.options.val_iterations == 16 and settings.options.val_samples == 8
        assert config.actor_rollout_ref.rollout.val_kwargs.temperature > 0


def test_the_paper_math_example_has_the_papers_settings() -> None:
    need("verl")
    from exit_verl.verl.settings import exit_settings

    config = _compose(_script_overrides("math_exit_grpo.sh"))
    settings = exit_settings(config)
    assert settings.preset == "improve" and settings.domain == "math"  # ARM picks the column
    assert config.actor_rollout_ref.model.path == "org/model"
    assert config.data.train_batch_size == 128 and config.actor_rollout_ref.rollout.n == 8
    actor = config.actor_rollout_ref.actor
    assert actor.optim.lr == 1e-6 and actor.ppo_epochs == 1 and actor.clip_ratio == 0.2
    assert actor.use_kl_loss and actor.kl_loss_coef == 0.001
    assert config.data.seed == 1  # one run per seed of SEEDS
    text = (EXAMPLES / "math_exit_grpo.sh").read_text()
    assert 'SEEDS=${SEEDS:-"0 1 2"}' in text
    assert "MODEL=${MODEL:-meta-llama/Llama-3.2-3B-Instruct}" in text


def test_the_tool_use_example_has_the_papers_tool_use_settings() -> None:
    need("verl")
    from verl.utils.config import omega_conf_to_dataclass

    from exit_verl.verl.settings import exit_settings

    config = _compose(_script_overrides("bfcl_exit_grpo.sh"))
    assert config.trainer.v1.trainer_mode == "exit"
    settings = exit_settings(config)
    assert settings.preset == "exit"
    assert settings.domain == "tool_use" and settings.curriculum.capacity == 640
    assert settings.options.val_iterations == 4
    assert (config.data.train_batch_size, config.actor_rollout_ref.rollout.n) == (16, 8)
    assert config.trainer.total_epochs == 2
    actor = omega_conf_to_dataclass(config.actor_rollout_ref.actor)
    assert actor.optim.lr == 1e-6 and actor.loss_agg_mode == "seq-mean-token-sum-norm"
    assert config.algorithm.norm_adv_by_std_in_grpo is False


def test_bfcl_preprocessor_writes_the_fixed_split_for_the_tool_use_agent_loop(tmp_path) -> None:
    need("bfcl_eval")
    import json

    import pandas as pd

    from exit_verl.domains.bfcl.rows import AGENT_NAME

    bfcl_prep = load("bfcl")
    counts = bfcl_prep.write(tmp_path, ["base", "miss_func"], "all", overlong_filter=True)
    assert counts == {"train.parquet": 320, "test.parquet": 80}
    test = pd.read_parquet(tmp_path / "test.parquet")
    assert set(test["agent_name"]) == {AGENT_NAME}
    extra = test["extra_info"].iloc[0]
    assert extra["bfcl_id"] == "multi_turn_base_0" and extra["overlong_filter"]
    assert json.loads(extra["tools"])[0]["type"] == "function"
    assert list(test["prompt"].iloc[0][0].keys()) == ["role", "content"]
