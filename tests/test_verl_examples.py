"""The verl example preprocessors: answer extraction and row layout (no download)."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest
from deps import need

EXAMPLES = Path(__file__).resolve().parent.parent / "examples" / "data_preprocess"


def load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"verl_example_{name}", EXAMPLES / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_verl_gsm8k_rows_carry_the_final_answer() -> None:
    gsm8k = load("gsm8k")
    example = {"question": "How many?", "answer": "3 + 4 = <<3+4=7>>7\n#### 1,207"}
    row = gsm8k.to_row(example, "train", 5)
    assert row["reward_model"] == {"style": "rule", "ground_truth": "1207"}
    assert (
        row["prompt"][0]["content"].startswith("How many?")
        and "####" in row["prompt"][0]["content"]
    )
    assert row["data_source"] == "openai/gsm8k" and row["extra_info"]["index"] == 5
    with pytest.raises(ValueError, match="####"):
        gsm8k.final_answer("no marker here")


def test_verl_math_rows_carry_the_last_boxed_answer() -> None:
    math_dataset = load("math_dataset")
    solution = r"First \boxed{1}. So the answer is $\boxed{\frac{1}{2}}$."
    assert math_dataset.last_boxed(solution) == r"\frac{1}{2}"
    row = math_dataset.to_row({"problem": "P?", "solution": solution}, "test", 0)
    assert row["reward_model"]["ground_truth"] == r"\frac{1}{2}"
    for bad in ("no box", r"\boxed{open"):
        with pytest.raises(ValueError, match="boxed"):
            math_dataset.last_boxed(bad)


def test_verl_math_ground_truth_is_accepted_by_verls_scorer() -> None:
    need("verl")
    from verl.utils.reward_score import default_compute_score

    math_dataset = load("math_dataset")
    row = math_dataset.to_row({"problem": "P?", "solution": r"so \boxed{\frac{1}{2}}"}, "t", 0)
    truth = row["reward_model"]["ground_truth"]
    assert default_compute_score(row["data_source"], r"... \boxed{\frac{1}{2}}", truth) == 1.0
    assert default_compute_score(row["data_source"], r"... \boxed{3}", truth) == 0.0


@pytest.mark.parametrize("script", ["gsm8k_exit_grpo.sh", "gpu_smoke.sh", "bfcl_exit_grpo.sh"])
def test_verl_example_commands_compose_and_pass_the_exit_checks(script: str) -> None:
    """The overrides of each example command compose with verl's own config, select trainer
    mode "exit" and pass the plugin's settings checks (what the trainer checks at start)."""
    need("verl")
    import shlex

    from hydra import compose, initialize_config_dir
    from verl.trainer import main_ppo

    from exit_verl.verl.settings import exit_settings

    text = (EXAMPLES.parent / script).read_text().replace("\\\n", " ")
    command = next(line for line in text.splitlines() if "verl.trainer.main_ppo" in line)
    values = {
        '$(basename "$MODEL")': "model",
        "$DATA": "/data",
        "$MODEL": "org/model",
        "$GROUP": "8",
        "$OUT": "/out",
    }
    for name, value in values.items():
        command = command.replace(name, value)
    args = shlex.split(command.replace('"$@"', ""))
    overrides = [a for a in args[args.index("verl.trainer.main_ppo") + 1 :] if "=" in a]
    config_dir = str(Path(main_ppo.__file__).parent / "config")
    with initialize_config_dir(config_dir=config_dir, version_base=None):
        config = compose(config_name="ppo_trainer", overrides=overrides)
    assert config.trainer.v1.trainer_mode == "exit"
    settings = exit_settings(config)
    assert settings.preset == "exit"
    if script == "bfcl_exit_grpo.sh":  # the paper's tool-use settings
        from verl.utils.config import omega_conf_to_dataclass

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
