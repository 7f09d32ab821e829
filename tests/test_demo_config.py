"""The demo's settings (one OmegaConf structured config), its verl command lines and the CLI's
handling of bad input."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from deps import need

need("omegaconf")

from exit_verl.cli import main  # noqa: E402
from exit_verl.demo.command import eval_command, hydra_value, train_command  # noqa: E402
from exit_verl.demo.config import DemoConfig, load_config  # noqa: E402

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def test_sources_merge_in_order(tmp_path) -> None:
    saved = tmp_path / "saved.yaml"
    saved.write_text("steps: 7\nseed: 3\nexit:\n  p_replay: 0.25\n")
    extra = tmp_path / "extra.yaml"
    extra.write_text("seed: 4\neval:\n  iterations: 6\n")
    cfg = load_config(base=saved, config_file=extra, overrides=["seed=5", "exit.p_diverge=0.1"])
    assert (cfg.steps, cfg.seed, cfg.eval.iterations) == (7, 5, 6)
    # The exit node merges key by key: the default replay gate survives both files.
    assert cfg.exit == {"preset": "exit", "min_archive_size": 8, "p_replay": 0.25, "p_diverge": 0.1}
    assert cfg.eval.tasks == DemoConfig().eval.tasks
    curriculum = cfg.exit_settings().curriculum
    assert (curriculum.p_replay, curriculum.p_diverge, curriculum.min_archive_size) == (
        0.25,
        0.1,
        8,
    )
    assert curriculum.diversity_bonus == "centroid"  # from the "exit" preset


def test_saved_config_round_trips(tmp_path) -> None:
    cfg = load_config(overrides=["steps=3", "exit.preset=grpo", "verl=[trainer.val_only=false]"])
    cfg.to_yaml(tmp_path / "c.yaml")
    assert load_config(base=tmp_path / "c.yaml") == cfg


def test_example_configs_load() -> None:
    assert load_config(config_file=EXAMPLES / "cpu_demo.yaml") == DemoConfig()
    small = load_config(config_file=EXAMPLES / "cpu_compare_small.yaml")
    assert small.steps >= 1 and small.eval.iterations >= 1


@pytest.mark.parametrize(
    ("override", "fragment"),
    [
        ("stepz=3", "stepz"),
        ("eval.iteration=3", "iteration"),
        ("exit.p_replai=0.3", "p_replai"),
        ("steps=many", "steps"),
        ("group_size=1", "group_size"),
        ("exit.p_replay=2", "p_replay"),
        ("exit.preset=nope", "nope"),
        ("exit.val_iterations=3", "eval.*"),
        ("model=/no/such/folder", "model"),
        ("reward=/no/such/file.py", "reward"),
        ("micro_batch_size=3", "micro_batch_size"),
        ("task_steps=[1,9]", "task_steps"),
        ("task_steps=[]", "task_steps"),
        ("steps", "key=value"),
    ],
)
def test_bad_settings_name_the_key(override: str, fragment: str) -> None:
    with pytest.raises(ValueError, match=None) as info:
        load_config(overrides=[override])
    message = str(info.value)
    assert fragment in message and "\n" not in message


def test_greedy_chains_cannot_be_averaged() -> None:
    with pytest.raises(ValueError, match="temperature"):
        load_config(overrides=["eval.samples=4", "eval.temperature=0"])


def test_hydra_values() -> None:
    assert hydra_value(None) == "null"
    assert hydra_value(True) == "true"
    assert hydra_value(0.25) == "0.25"
    assert hydra_value([0.0, 1]) == "[0.0,1]"
    assert hydra_value("it's a\\b") == "'it\\'s a\\\\b'"
    with pytest.raises(ValueError):
        hydra_value({"a": 1})


def _as_dict(command: list[str]) -> dict[str, str]:
    return dict(item.split("=", 1) for item in command if "=" in item)


def test_train_and_eval_commands(tmp_path) -> None:
    from hydra.core.override_parser.overrides_parser import OverridesParser

    cfg = load_config(
        overrides=[
            "steps=5",
            "exit.preset=improve",
            "exit.improve_template='Fix: {task} / {attempt}, now!'",
            "eval.samples=2",
            "verl=[trainer.rollout_data_dir=/tmp/x]",
        ]
    )
    model = tmp_path / "model"
    train = train_command(cfg, tmp_path, model, tmp_path / "h", resuming=False)
    assert train[1:3] == ["-m", "verl.trainer.main_ppo"]
    args = _as_dict(train)
    assert args["trainer.v1.trainer_mode"] == "exit"
    assert args["+exit.preset"] == "'improve'"
    assert args["+exit.val_iterations"] == str(cfg.eval.iterations)
    assert args["+exit.val_samples"] == "2"
    assert args["actor_rollout_ref.rollout.val_kwargs.do_sample"] == "true"
    assert args["trainer.total_training_steps"] == "5"
    assert args["trainer.val_before_train"] == "true"
    assert args["trainer.device"] == "cpu"
    assert args["actor_rollout_ref.model.lora_rank"] == "16"
    assert train[-1] == "trainer.rollout_data_dir=/tmp/x"  # raw overrides come last
    # Every override parses as hydra parses it, the template text included.
    parsed = OverridesParser.create().parse_overrides([a for a in train[3:]])
    template = next(o for o in parsed if o.key_or_group == "exit.improve_template")
    assert template.value() == "Fix: {task} / {attempt}, now!"

    resumed = _as_dict(train_command(cfg, tmp_path, model, tmp_path / "h", resuming=True))
    assert resumed["trainer.val_before_train"] == "false"  # the base was evaluated at step 0

    ckpt = tmp_path / "checkpoints" / "global_step_5"
    on_ckpt = _as_dict(eval_command(cfg, tmp_path, model, tmp_path / "h", ckpt))
    assert on_ckpt["trainer.val_only"] == "true"
    assert on_ckpt["trainer.resume_mode"] == "resume_path"
    assert on_ckpt["trainer.resume_from_path"] == hydra_value(str(ckpt))
    base = _as_dict(eval_command(cfg, tmp_path, model, tmp_path / "h", None))
    assert base["trainer.resume_mode"] == "disable"


def test_paths_reach_hydra_as_one_value_whatever_they_contain(tmp_path) -> None:
    """A run folder named with hydra's sweep and syntax characters stays one path."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    cfg = load_config(overrides=["steps=2"])
    run_dir = tmp_path / "a,b=c d'e[f]{g}$h"
    model = tmp_path / "m,odel"
    ckpt = run_dir / "checkpoints" / "global_step_2"
    for command in (
        train_command(cfg, run_dir, model, run_dir / "hy,dra", resuming=False),
        eval_command(cfg, run_dir, model, run_dir / "hy,dra", ckpt),
    ):
        parsed = OverridesParser.create().parse_overrides(command[3:])
        assert not any(o.is_sweep_override() for o in parsed)
        values = {o.key_or_group: o.value() for o in parsed}
        assert values["data.train_files"] == str(run_dir / "train.parquet")
        assert values["trainer.default_local_dir"] == str(run_dir / "checkpoints")
        assert values["actor_rollout_ref.model.path"] == str(model)
        assert values["trainer.experiment_name"] == run_dir.name
        assert values["hydra.run.dir"] == str(run_dir / "hy,dra")
    assert values["trainer.resume_from_path"] == str(ckpt)


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "exit_verl.cli", *args], capture_output=True, text=True, timeout=120
    )


def test_help_of_every_command() -> None:
    for command in ([], ["demo"], ["eval"], ["compare"]):
        done = _cli(*command, "--help")
        assert done.returncode == 0, done.stderr
        assert "usage: exit-verl" in done.stdout


@pytest.mark.parametrize(
    "args",
    [
        ["demo", "--out", "{tmp}/run", "stepz=2"],
        ["demo", "--out", "{tmp}/run", "--steps", "0"],
        ["demo", "--out", "{tmp}/file"],
        ["compare", "--out", "{tmp}/cmp", "--arms", "grpo,bogus"],
        ["compare", "--out", "{tmp}/cmp", "--seeds", "0"],
        ["eval", "--run", "{tmp}/missing"],
        ["eval", "--run", "{tmp}/run", "--iterations", "-1"],
    ],
)
def test_bad_input_exits_2_with_one_line(tmp_path, args, capsys) -> None:
    (tmp_path / "file").write_text("not a folder")
    (tmp_path / "run").mkdir()
    load_config().to_yaml(tmp_path / "run" / "config.yaml")
    (tmp_path / "run" / "checkpoints" / "global_step_1").mkdir(parents=True)
    (tmp_path / "run" / "checkpoints" / "latest_checkpointed_iteration.txt").write_text("1")
    before = sorted(p.name for p in tmp_path.rglob("*"))
    with pytest.raises(SystemExit) as info:
        main([a.format(tmp=tmp_path) for a in args])
    assert info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("exit-verl: error:") and "\n" not in err, err
    assert sorted(p.name for p in tmp_path.rglob("*")) == before  # nothing was written
