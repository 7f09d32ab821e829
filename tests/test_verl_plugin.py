"""The verl plugin without a running fit: entry point, trainer mode, settings, entry commands.

The trainer is verl's own class hierarchy built from verl's composed `ppo_trainer` config;
TransferQueue calls are replaced by recorders where a test checks that verl does NOT make them.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest
from deps import need

need("verl")

import transfer_queue  # noqa: E402
import verl_fit_harness as harness  # noqa: E402
from omegaconf import OmegaConf, open_dict  # noqa: E402
from verl.trainer.ppo.v1.replay_buffer import ReplayBuffer, ReplayBufferAsync  # noqa: E402

import exit_verl.verl.trainer as exit_trainer  # noqa: E402

VERL_ROOT = Path(sys.modules["verl"].__file__).parent
# verl 0.9.1's comparisons of the trainer mode, by the trainer_base method they sit in.
MODE_SITES = {
    "_build_replay_buffer",
    "_init_dataloader",
    "_load_checkpoint",
    "_reissue_inflight_prompts",
    "_save_checkpoint",
    "_submit_batch_to_rollout",
}


def run_python(code: str, **env: str) -> subprocess.CompletedProcess:
    import os

    return subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "HF_HUB_OFFLINE": "1", **env},
    )


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    work = tmp_path_factory.mktemp("plugin")
    harness.make_model_dir(work / "model")
    harness.write_parquet(work / "train.parquet", harness.default_train_rows())
    harness.write_parquet(work / "val.parquet", harness.default_val_rows())
    return work


def compose(work: Path, *overrides: str):
    return harness.compose(
        work, work / "model", str(work / "train.parquet"), str(work / "val.parquet"), *overrides
    )


# -- entry point ------------------------------------------------------------------------------


def test_import_verl_registers_exit_without_loading_the_trainer() -> None:
    probe = """
import sys, verl
print("v1_loaded", "verl.trainer.ppo.v1" in sys.modules, "exit_verl.verl.trainer" in sys.modules)
from verl.trainer.ppo.v1 import PPOTrainerSync, get_trainer_cls
from exit_verl.verl.trainer import ExItTrainer
print("exit", get_trainer_cls("exit") is ExItTrainer)
print("sync", get_trainer_cls("sync") is PPOTrainerSync)
"""
    out = run_python(probe)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "v1_loaded False False" in out.stdout
    assert "exit True\nsync True" in out.stdout
    # verl's switch for entry points turns the mode off: the entry point is what registers it.
    unplugged = probe.replace("from exit_verl.verl.trainer import ExItTrainer\n", "")
    off = run_python(unplugged, VERL_USE_EXTERNAL_PLUGINS="none")
    assert off.returncode != 0 and "Unknown trainer 'exit'" in off.stderr


def test_a_failing_registration_is_logged_and_leaves_verl_working() -> None:
    probe = """
import sys
sys.modules["exit_verl.verl.trainer"] = None  # importing it now fails
import verl
from verl.trainer.ppo.v1 import get_trainer_cls
print("sync", get_trainer_cls("sync").__name__)
"""
    out = run_python(probe)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "sync PPOTrainerSync" in out.stdout
    assert "could not register verl trainer modes 'exit', 'exit_colocate_async'" in out.stderr
    assert "Traceback" in out.stderr  # the cause is shown, not swallowed at debug level


# -- trainer mode: sync behaviour at every comparison in verl ---------------------------------


def mode_comparisons(root: Path) -> set[tuple[str, str]]:
    """(file, function) of every comparison that involves a `trainer_mode` value in verl."""
    found = set()
    for path in root.rglob("*.py"):
        tree = ast.parse(path.read_text())
        for func in ast.walk(tree):
            if not isinstance(func, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            for node in ast.walk(func):
                if isinstance(node, ast.Compare):
                    names = {
                        n.attr if isinstance(n, ast.Attribute) else getattr(n, "id", None)
                        for side in (node.left, *node.comparators)
                        for n in ast.walk(side)
                    }
                    if "trainer_mode" in names:
                        found.add((path.name, func.name))
    return found


def test_every_trainer_mode_comparison_in_verl_is_known() -> None:
    # A verl release that compares the mode somewhere new fails here: check the new site
    # sees "sync" for ExIt (test below) and add it.
    assert mode_comparisons(VERL_ROOT) == {("trainer_base.py", name) for name in MODE_SITES}


class Recorder:
    def __init__(self, fail: bool = False) -> None:
        self.calls: list[dict] = []
        self.fail = fail

    def __call__(self, *args, **kwargs):
        if self.fail:
            raise AssertionError(f"verl made an async-mode TransferQueue call: {args} {kwargs}")
        self.calls.append(kwargs)


def test_exit_mode_gets_sync_behaviour_at_every_comparison(workdir, tmp_path, monkeypatch) -> None:
    from verl.trainer.ppo.v1 import get_trainer_cls

    config = compose(workdir, f"trainer.default_local_dir={tmp_path / 'ckpt'}")
    OmegaConf.resolve(config)
    trainer = get_trainer_cls("exit")(config=config)
    assert config.trainer.v1.trainer_mode == "exit"  # the config keeps the user's mode
    # _build_replay_buffer: verl's sync buffer, told the sync mode, one local update per step.
    assert isinstance(trainer.replay_buffer, ReplayBuffer)
    assert not isinstance(trainer.replay_buffer, ReplayBufferAsync)
    assert trainer.replay_buffer.trainer_mode == "sync" and trainer.parameter_sync_step == 1
    # _init_dataloader: no exact-refill override of the fetch size.
    trainer._init_tokenizer()
    trainer._init_dataloader()
    assert config.data.get("gen_batch_size") is None
    assert trainer.train_dataloader.batch_size == config.data.train_batch_size
    # _reissue_inflight_prompts: nothing to re-issue, TransferQueue untouched.
    monkeypatch.setattr(transfer_queue, "kv_list", Recorder(fail=True))
    assert trainer._reissue_inflight_prompts() == 0
    # _submit_batch_to_rollout: prompts registered by tag only (no persisted fields).
    put = Recorder()
    monkeypatch.setattr(transfer_queue, "kv_batch_put", put)
    trainer.agent_loop_manager = type("M", (), {"generate_sequences": lambda self, b: None})()
    trainer.global_steps = 1
    trainer._submit_batch_to_rollout(trainer._next_train_batch())
    assert len(put.calls) == 1 and "fields" not in put.calls[0]
    # _save_checkpoint / _load_checkpoint: no TransferQueue checkpoint written or read.
    monkeypatch.setattr(transfer_queue, "save_checkpoint", Recorder(fail=True))
    monkeypatch.setattr(transfer_queue, "load_checkpoint", Recorder(fail=True))
    trainer.actor_rollout_wg = harness.FakeActor(dp=2)
    trainer.use_critic = False
    trainer.exit.pending.clear()  # a sync step observes every prompt it issued before a save
    trainer._save_checkpoint()
    folder = tmp_path / "ckpt" / "global_step_1"
    assert (folder / "exit_state.json").is_file() and not (folder / "transfer_queue").exists()
    (folder / "transfer_queue").mkdir()  # what an async run would have left
    trainer._load_checkpoint()
    assert trainer.global_steps == 1


def test_the_mode_cannot_be_assigned_another_name() -> None:
    trainer = object.__new__(exit_trainer.ExItTrainer)
    with pytest.raises(ValueError, match="trainer mode 'exit'"):
        trainer.trainer_mode = "sync"
    trainer.trainer_mode = "exit"
    assert trainer.trainer_mode == "sync"


# -- settings ---------------------------------------------------------------------------------


def test_the_reference_reset_is_the_papers_per_domain_where_verl_has_one(workdir) -> None:
    from exit_verl.verl.settings import ReferenceReset, exit_settings

    def reset(*overrides: str) -> ReferenceReset:
        return exit_settings(compose(workdir, *overrides)).reference

    kl = ("actor_rollout_ref.actor.use_kl_loss=True", "actor_rollout_ref.actor.strategy=fsdp2")
    assert reset(*kl) == ReferenceReset(100, 1.0)  # math
    assert reset(*kl, "+exit.domain=tool_use") == ReferenceReset(100, 1.0)
    assert reset(*kl, "+exit.domain=mle") == ReferenceReset(100, 0.5)
    assert reset(*kl, "+exit.ref_reset_every=7", "+exit.ref_reset_alpha=0.25") == ReferenceReset(
        7, 0.25
    )
    assert reset(*kl, "+exit.ref_reset_every=0").every == 0
    assert reset() == ReferenceReset(0, 1.0)  # no KL term: no reference, nothing said
    fsdp1 = reset("actor_rollout_ref.actor.use_kl_loss=True")  # verl's default engine
    assert fsdp1.every == 0 and "strategy=fsdp2" in fsdp1.note
    lora = (*kl, "actor_rollout_ref.model.lora_rank=8")
    assert reset(*lora) == ReferenceReset(100, 1.0)
    lora_only = reset(*lora, "+actor_rollout_ref.actor.checkpoint.save_lora_only=True")
    assert lora_only.every == 0 and "save_lora_only" in lora_only.note


def test_preset_and_overrides_come_from_exit_keys(workdir) -> None:
    from exit_verl import ExItConfig
    from exit_verl.verl.settings import exit_settings

    settings = exit_settings(compose(workdir, "+exit.p_diverge=0.3", "+exit.val_iterations=4"))
    expected = ExItConfig.preset("exit", "math")
    assert settings.preset == "exit" and settings.options.val_iterations == 4
    assert settings.curriculum.p_diverge == 0.3
    assert settings.curriculum.capacity == expected.capacity  # untouched keys: the preset's
    grpo = exit_settings(compose(workdir, "exit.preset=grpo"))
    assert grpo.curriculum.p_replay == 0.0  # "grpo" never replays
    plain = compose(workdir)
    with open_dict(plain):
        del plain["exit"]
    assert exit_settings(plain).preset == "exit"


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("+exit.p_replayy=0.3", "p_replayy"),
        ("+exit.p_replay=abc", "p_replay"),
        ("+exit.p_replay=1.5", "p_replay"),
        ("exit.preset=bogus", "bogus"),
        ("+exit.temperature=inf", "temperature must be finite"),
        ("+exit.diversity_coef=nan", "diversity_coef must be finite"),
        ("+exit.capacity=5000000000", "capacity must be in"),
        ("+exit.min_child_learnability=nan", "min_child_learnability must be finite"),
        ("exit.min_archive_size=600", "min_archive_size must be in"),
        ("+exit.val_iterations=-1", "val_iterations"),
        ("+exit.val_iterations=2 +exit.val_samples=4", "val_kwargs.temperature"),
        ("algorithm.adv_estimator=gae", "group-based"),
        ("actor_rollout_ref.rollout.n=1", "rollout.n"),
        ("trainer.use_v1=false", "use_v1"),
        ("trainer.v1.sampler.custom_sampler.path=x.py", "custom_sampler"),
        ("skip.rollout_tq.enable=True", "skip.rollout_tq"),
        (
            "algorithm.filter_groups.enable=True +exit.diversity_bonus=centroid_reward",
            "diversity_bonus=centroid_reward",
        ),
        (
            "algorithm.filter_groups.enable=True +exit.iteration_reward=improvement",
            "iteration_reward=improvement",
        ),
        ("+exit.ref_reset_every=5", "use_kl_loss=true"),
        ("actor_rollout_ref.actor.use_kl_loss=True +exit.ref_reset_every=5", "strategy=fsdp2"),
        ("+exit.ref_reset_alpha=0", "ref_reset_alpha"),
        ("+exit.embed_device=tpu", "embed_device"),
        ("exit.embedder=no-org/no-such-model", "local Hugging Face cache"),
        (
            "trainer.v1.trainer_mode=exit_colocate_async reward.reward_model.enable=True",
            "enable_resource_pool",
        ),
    ],
)
def test_bad_settings_fail_with_the_key_named(workdir, override, message) -> None:
    from exit_verl.verl.settings import exit_settings

    with pytest.raises((ValueError, KeyError), match=message):
        exit_settings(compose(workdir, *override.split()))


def test_a_bad_setting_fails_before_verl_builds_anything(workdir, monkeypatch) -> None:
    from verl.trainer.ppo.v1 import get_trainer_cls

    cls = get_trainer_cls("exit")
    built = []
    original = cls._build_replay_buffer
    monkeypatch.setattr(cls, "_build_replay_buffer", lambda self: built.append(1) or original(self))
    with pytest.raises(ValueError, match="p_replay"):
        cls(config=compose(workdir, "+exit.p_replay=1.5"))
    assert not built
    cls(config=compose(workdir))
    assert built == [1]


# -- entry commands ---------------------------------------------------------------------------


def test_stock_entry_point_prints_verls_config_with_exit_settings() -> None:
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "verl.trainer.main_ppo",
            "--cfg",
            "job",
            "trainer.v1.trainer_mode=exit",
            "+exit.preset=exit",
            "+exit.p_replay=0.3",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    printed = OmegaConf.create(out.stdout[out.stdout.index("actor_rollout_ref:") :])
    assert printed.trainer.v1.trainer_mode == "exit"
    assert OmegaConf.to_container(printed.exit) == {"preset": "exit", "p_replay": 0.3}
    assert printed.algorithm.adv_estimator == "gae"  # verl's own defaults around it


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["py", "-m", "verl.trainer.main_ppo", "trainer.v1.trainer_mode=exit", "+exit.a=1"],
         ["trainer.v1.trainer_mode=exit", "+exit.a=1"]),
        (["py", "-X", "importtime", "-m", "verl.trainer.main_ppo", "--multirun",
          "trainer.v1.trainer_mode=exit"], ["trainer.v1.trainer_mode=exit"]),
        (["py", "/x/verl/trainer/main_ppo.py", "trainer.v1.trainer_mode=exit"],
         ["trainer.v1.trainer_mode=exit"]),
        (["py", "-m", "verl.trainer.main_ppo", "trainer.v1.trainer_mode=sync"], None),
        (["py", "-m", "verl.trainer.main_ppo", "--cfg", "job", "trainer.v1.trainer_mode=exit"],
         None),
        (["py", "-m", "verl.trainer.main_ppo", "-cn", "mine", "trainer.v1.trainer_mode=exit"],
         None),
        (["py", "-m", "exit_verl.main_ppo", "trainer.v1.trainer_mode=exit"], None),
        (["py", "-c", "import verl", "trainer.v1.trainer_mode=exit"], None),
    ],
)  # fmt: skip
def test_driver_check_reads_verls_exit_mode_command_lines(argv, expected) -> None:
    from exit_verl.verl.driver_check import command_line_overrides

    assert command_line_overrides(argv) == expected


def test_stock_entry_point_rejects_a_bad_setting_before_ray_starts() -> None:
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "verl.trainer.main_ppo",
            "trainer.v1.trainer_mode=exit",
            "algorithm.adv_estimator=grpo",
            "actor_rollout_ref.rollout.n=4",
            "+exit.p_replay=1.5",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode != 0
    assert "p_replay" in out.stderr and "nothing was started" in out.stderr
    assert "ray init kwargs" not in out.stdout  # verl prints it right before ray.init


def test_convenience_module_sets_the_mode_and_checks_before_verl(workdir, monkeypatch) -> None:
    import verl.trainer.main_ppo as verl_main

    from exit_verl import main_ppo

    assert main_ppo.with_exit_mode(["a=1"]) == ["a=1", "trainer.v1.trainer_mode=exit"]
    assert main_ppo.with_exit_mode(["trainer.v1.trainer_mode=sync"]) == [
        "trainer.v1.trainer_mode=sync"
    ]
    handed = []
    monkeypatch.setattr(verl_main, "main", handed.append)
    with pytest.raises(ValueError, match="p_replay"):
        main_ppo.main(compose(workdir, "+exit.p_replay=1.5"))
    assert not handed  # failed before verl's main (and Ray)
    config = compose(workdir)
    main_ppo.main(config)
    assert handed == [config]


def test_a_missing_embedder_package_fails_at_start(monkeypatch) -> None:
    import importlib.util

    from exit_verl.verl.settings import exit_settings

    config = {
        "algorithm": {"adv_estimator": "grpo"},
        "actor_rollout_ref": {"rollout": {"n": 4}},
        "trainer": {"use_v1": True, "v1": {}},
        "exit": {"preset": "exit"},  # the paper's centroid bonus, MiniLM embeddings
    }
    assert exit_settings(config).curriculum.diversity_bonus == "centroid"
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "sentence_transformers" else find_spec(name, *a),
    )
    with pytest.raises(ValueError, match="sentence-transformers"):
        exit_settings(config)
    config["exit"] = {"preset": "exit", "embedder": "hashing"}
    assert exit_settings(config).curriculum.embedder == "hashing"
    config["exit"] = {"preset": "grpo"}  # no bonus: nothing to embed
    assert exit_settings(config).preset == "grpo"
