"""`exit-verl demo --domain mle` without starting verl: settings, datasets, the command line,
the sandbox check."""

from __future__ import annotations

from pathlib import Path

import pytest
from deps import need

need("omegaconf")
need("sklearn")

from exit_verl.demo import mle_data  # noqa: E402
from exit_verl.demo.command import hydra_value, train_command  # noqa: E402
from exit_verl.demo.config import DemoConfig, load_config  # noqa: E402
from exit_verl.demo.domains import MLE_REWARD_FILE, REWARD_FILE  # noqa: E402
from exit_verl.domains import mle  # noqa: E402


def test_domain_defaults_are_the_papers_mle_column_and_stay_overridable() -> None:
    cfg = load_config(overrides=["domain=mle"])
    settings = cfg.exit_settings().curriculum
    assert cfg.exit == {"preset": "exit", "domain": "mle"}
    assert (settings.capacity, settings.min_archive_size, settings.p_replay) == (24, 3, 0.5)
    assert settings.p_diverge == 0.5 and settings.iteration_reward == "improvement"
    assert settings.domain == "mle" and cfg.eval.iterations == 16
    cfg = load_config(overrides=["domain=mle", "eval.iterations=2", "exit.p_replay=1.0"])
    assert cfg.eval.iterations == 2 and cfg.exit["p_replay"] == 1.0
    assert cfg.exit["domain"] == "mle"
    assert load_config() == DemoConfig()  # the arithmetic demo is unchanged
    with pytest.raises(ValueError, match="domain must be one of"):
        load_config(overrides=["domain=chess"])
    with pytest.raises(ValueError, match="mle.timeout_s"):
        load_config(overrides=["domain=mle", "mle.timeout_s=0"])


def test_rows_name_their_competition(tmp_path: Path) -> None:
    import pandas as pd

    files = mle_data.mle_task_files(tmp_path, train=["iris"], heldout=["wine"], timeout_s=30)
    train = pd.read_parquet(files["train"])
    assert len(train) == 1 and train["reward_model"][0]["ground_truth"] == "iris"
    prompt = list(train["prompt"][0])
    assert prompt[0]["role"] == "system" and "30 seconds" in prompt[1]["content"]
    assert prompt[1]["content"] == mle.get_task("iris").prompt(30)
    with pytest.raises(ValueError, match="other tasks"):
        mle_data.mle_task_files(tmp_path, train=["digits"], heldout=["wine"], timeout_s=30)
    with pytest.raises(ValueError, match="share"):
        mle_data.mle_task_files(tmp_path / "x", train=["iris"], heldout=["iris"], timeout_s=30)


def test_command_uses_the_sandboxed_reward_and_dumps_rollouts(tmp_path: Path) -> None:
    cfg = load_config(overrides=["domain=mle", "mle.timeout_s=30", "mle.concurrency=2"])
    command = train_command(cfg, tmp_path, tmp_path / "model", tmp_path / "h", resuming=False)
    assert f"reward.custom_reward_function.path={hydra_value(str(MLE_REWARD_FILE))}" in command
    assert MLE_REWARD_FILE.is_file()
    kwargs = "+reward.custom_reward_function.reward_kwargs"
    assert f"{kwargs}.timeout_s=30.0" in command and f"{kwargs}.concurrency=2" in command
    assert f"{kwargs}.allow_unsandboxed=false" in command
    assert f"{kwargs}.log_path={hydra_value(str(tmp_path / 'sandbox.jsonl'))}" in command
    assert f"trainer.rollout_data_dir={hydra_value(str(tmp_path / 'rollouts'))}" in command
    assert "+exit.domain='mle'" in command and "+exit.val_iterations=16" in command
    arithmetic = train_command(
        DemoConfig(), tmp_path, tmp_path / "m", tmp_path / "h", resuming=False
    )
    assert f"reward.custom_reward_function.path={hydra_value(str(REWARD_FILE))}" in arithmetic
    assert not any("reward_kwargs" in i or "rollout_data_dir" in i for i in arithmetic)


def test_missing_sandbox_stops_the_demo_unless_opted_in(monkeypatch) -> None:
    monkeypatch.setattr(mle, "sandbox_problem", lambda: "bwrap is not installed")
    monkeypatch.delenv(mle.UNSANDBOXED_ENV, raising=False)
    with pytest.raises(ValueError, match="cannot run its sandbox here: bwrap is not installed"):
        mle_data.check_sandbox(False)
    said: list[str] = []
    mle_data.check_sandbox(True, said.append)
    assert said and "WITHOUT A SANDBOX" in said[0]
    monkeypatch.setattr(mle, "sandbox_problem", lambda: None)
    mle_data.check_sandbox(False, said.append)
    assert len(said) == 1
