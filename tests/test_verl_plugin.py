"""The verl plugin on CPU: verl's real config, dataset, DataProto and core_algos, no trainer.

verl's trainer needs an accelerator; everything up to it is exercised here: the composed
config, the controller built as the trainer builds it, several simulated GRPO steps with
verl's gsm8k scorer and verl's advantage code on the shaped rewards (also through the
trainer's own advantage step, TransferQueue kept in memory), checkpoint round trips, and that
`exit.enable=false` hands verl's own main exactly verl's config.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("verl")

import torch  # noqa: E402
from hydra import compose, initialize_config_dir  # noqa: E402
from omegaconf import OmegaConf  # noqa: E402

import exit_verl.verl as plugin  # noqa: E402
from exit_verl import History  # noqa: E402
from exit_verl.verl.controller import SUPPORTED_ESTIMATORS  # noqa: E402
from exit_verl.verl.trainer import build_controller, exit_trainer_class  # noqa: E402

CONFIG_DIR = str(Path(plugin.__file__).parent / "config")
GROUP = 4


@pytest.fixture(scope="module")
def tokenizer():
    """A small byte-level BPE tokenizer with a chat template, trained here (no download)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    corpus = ["Tom has 3 apples and buys 4 more. How many now? We add them up. #### 7"] * 8
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    bpe.train_from_iterator(
        corpus,
        trainers.BpeTrainer(
            vocab_size=320,
            special_tokens=["<|pad|>", "<|eos|>"],
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        ),
    )
    tok = PreTrainedTokenizerFast(tokenizer_object=bpe, pad_token="<|pad|>", eos_token="<|eos|>")
    tok.chat_template = (
        "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}<|eos|>{% endfor %}"
        "{% if add_generation_prompt %}<|assistant|>{% endif %}"
    )
    return tok


@pytest.fixture(scope="module")
def parquet(tmp_path_factory) -> str:
    import pandas as pd

    rows = []
    for i in range(12):
        a, b = 3 + i, 4 + 2 * i
        rows.append(
            {
                "data_source": "openai/gsm8k",
                "prompt": [
                    {
                        "role": "user",
                        "content": f"Tom has {a} apples and buys {b} more. How many now? "
                        'Let\'s think step by step and output the final answer after "####".',
                    }
                ],
                "ability": "math",
                "reward_model": {"style": "rule", "ground_truth": str(a + b)},
                "extra_info": {"split": "train", "index": i},
            }
        )
    path = tmp_path_factory.mktemp("data") / "train.parquet"
    pd.DataFrame(rows).to_parquet(path)
    return str(path)


def _overrides(parquet: str, tmp_path: Path) -> list[str]:
    return [
        f"data.train_files={parquet}",
        f"data.val_files={parquet}",
        "data.train_batch_size=4",
        "data.max_prompt_length=256",
        "data.dataloader_num_workers=0",
        f"+data.cache_dir={tmp_path / 'cache'}",
        "algorithm.adv_estimator=grpo",
        f"actor_rollout_ref.rollout.n={GROUP}",
        "exit.enable=true",
        "exit.min_archive_size=4",
        "exit.p_replay=0.75",
        "exit.p_diverge=0.25",
        "exit.domain=generic",
        f"trainer.default_local_dir={tmp_path / 'ckpt'}",
    ]


def compose_config(parquet: str, tmp_path: Path, *extra: str):
    overrides = [*_overrides(parquet, tmp_path), *extra]
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base=None):
        return compose(config_name="exit_ppo_trainer", overrides=overrides)


def verl_dataset(config, tokenizer):
    from verl.trainer.ppo.utils import create_rl_dataset

    # The same call and arguments as verl's PPOTrainer._init_dataloader.
    return create_rl_dataset(
        config.data.train_files,
        config.data,
        tokenizer,
        None,
        is_train=True,
        max_samples=config.data.get("train_max_samples", -1),
    )


def rollout(batch: dict, tokenizer, rng: np.random.Generator):
    """Fake generation + verl's gsm8k scorer: a DataProto as the reward loop leaves it."""
    from verl.protocol import DataProto
    from verl.utils.reward_score import default_compute_score

    uids, texts, scores = [], [], []
    for uid, reward_model, data_source in zip(
        batch["uid"], batch["reward_model"], batch["data_source"], strict=True
    ):
        truth = int(reward_model["ground_truth"])
        for _ in range(GROUP):
            guess = truth + int(rng.integers(-1, 2))
            texts.append(f"We add them up. #### {guess}")
            scores.append(default_compute_score(data_source, texts[-1], str(truth)))
            uids.append(uid)
    enc = [tokenizer.encode(t) + [tokenizer.eos_token_id] for t in texts]
    width = max(len(e) for e in enc)
    responses = torch.full((len(enc), width), tokenizer.pad_token_id)
    mask = torch.zeros((len(enc), width), dtype=torch.long)
    rm_scores = torch.zeros((len(enc), width))
    for i, ids in enumerate(enc):
        responses[i, : len(ids)] = torch.tensor(ids)
        mask[i, : len(ids)] = 1
        rm_scores[i, len(ids) - 1] = scores[i]
    data = DataProto.from_dict(
        tensors={"responses": responses, "response_mask": mask, "rm_scores": rm_scores},
        non_tensors={"uid": np.array(uids, dtype=object)},
    )
    return data, texts


def test_composed_config_has_every_exit_key(parquet, tmp_path) -> None:
    from exit_verl import ExItConfig

    config = compose_config(parquet, tmp_path, "exit.p_replay=0.3")
    assert config.exit.enable is True and config.exit.p_replay == 0.3
    defaults = ExItConfig().to_dict()
    keys = set(config.exit) - {"enable", "val_iterations"}
    assert keys == set(defaults)
    plain = compose_config(parquet, tmp_path)
    for key, value in defaults.items():
        if key not in ("min_archive_size", "p_replay", "p_diverge", "domain"):
            assert plain.exit[key] == value, key  # the yaml group mirrors ExItConfig defaults
    # verl's own config is untouched by the group.
    assert config.algorithm.adv_estimator == "grpo" and "actor_rollout_ref" in config


def test_simulated_grpo_steps_grow_and_replay_the_archive(parquet, tmp_path, tokenizer) -> None:
    from verl.trainer.ppo import core_algos

    config = compose_config(parquet, tmp_path)
    controller = build_controller(config, verl_dataset(config, tokenizer), tokenizer)
    rng = np.random.default_rng(0)
    kinds: list[str] = []
    for step in range(1, 7):
        batch = controller.next_batch_dict(config.data.train_batch_size, step)
        assert set(batch) >= {"raw_prompt", "uid", "reward_model", "data_source", "dummy_tensor"}
        for prompt, extra in zip(batch["raw_prompt"], batch["extra_info"], strict=True):
            kinds.append(extra["exit_kind"])
            if extra["exit_kind"] != "base":
                entry = controller.curriculum.archive.get([extra["exit_archive_id"]])[0]
                attempt = History.from_bytes(entry).attempt
                assert attempt in prompt[-1]["content"]
                assert "How many now?" in prompt[-1]["content"]
        data, _ = rollout(batch, tokenizer, rng)
        before = len(controller.curriculum.archive)
        shaped, metrics = controller.shape_rewards(data, step)
        assert metrics["exit/archive_size"] == len(controller.curriculum.archive) >= before
        # The shaped token-level scores feed verl's own GRPO estimator.
        advantages, _ = core_algos.compute_grpo_outcome_advantage(
            shaped, data.batch["response_mask"].float(), data.non_tensor_batch["uid"]
        )
        assert advantages.shape == shaped.shape and torch.isfinite(advantages).all()
        outcome = (shaped * data.batch["response_mask"]).sum(dim=1).view(-1, GROUP)
        raw = (data.batch["rm_scores"] * data.batch["response_mask"]).sum(dim=1).view(-1, GROUP)
        torch.testing.assert_close(outcome, raw)  # diversity_bonus "none": rewards unchanged
    assert len(controller.curriculum.archive) > 0
    assert "improve" in kinds and "diverge" in kinds and "base" in kinds
    assert not controller.pending  # every issued prompt was observed


@pytest.mark.parametrize("estimator", SUPPORTED_ESTIMATORS)
def test_verl_advantage_path_on_shaped_rewards(parquet, tmp_path, tokenizer, estimator) -> None:
    """verl's own v1 advantage step (as `_compute_advantage` calls it) on the shaped scores."""
    from verl.trainer.ppo.v1.utils import compute_advantage_for_multi_trajectories

    bonus = (
        "exit.diversity_bonus=centroid_reward",
        "exit.embedder=hashing",
        "exit.diversity_coef=1.0",
    )
    config = compose_config(parquet, tmp_path, f"algorithm.adv_estimator={estimator}", *bonus)
    controller = build_controller(config, verl_dataset(config, tokenizer), tokenizer)
    batch = controller.next_batch_dict(4, 1)
    data, _ = rollout(batch, tokenizer, np.random.default_rng(3))
    uids = data.non_tensor_batch["uid"]
    keys = [f"{uid}_{i % GROUP}_0" for i, uid in enumerate(uids)]  # verl's TQ key layout
    shaped, _ = controller.shape_rewards(data, 1, keys=keys)
    data.batch["token_level_scores"] = shaped
    data.batch["token_level_rewards"] = shaped
    out = compute_advantage_for_multi_trajectories(
        data,
        batch_keys=keys,
        adv_estimator=estimator,
        num_repeat=GROUP,
        config=config.algorithm,
    )
    mask = data.batch["response_mask"].bool()
    advantages = out.batch["advantages"]
    assert advantages.shape == shaped.shape and torch.isfinite(advantages).all()
    per_row = (advantages * mask).sum(dim=1) / mask.sum(dim=1)
    outcome = (shaped * mask).sum(dim=1)
    for group in range(len(uids) // GROUP):
        rows = slice(group * GROUP, (group + 1) * GROUP)
        if torch.unique(outcome[rows]).numel() == 1:
            assert torch.allclose(per_row[rows], torch.zeros(GROUP), atol=1e-5)
        elif estimator.startswith(("grpo", "rloo", "reinforce")) and estimator != "grpo_passk":
            best = outcome[rows].argmax()
            assert per_row[rows][best] > 0  # the highest shaped reward is pushed up


def test_unobserved_prompts_are_forgotten(parquet, tmp_path, tokenizer) -> None:
    from exit_verl.verl.controller import PENDING_STEPS

    config = compose_config(parquet, tmp_path)
    controller = build_controller(config, verl_dataset(config, tokenizer), tokenizer)
    dropped = controller.next_batch_dict(4, 1)  # e.g. filtered away, never scored
    step = 2 + PENDING_STEPS
    kept = controller.next_batch_dict(4, step)
    controller.shape_rewards(rollout(kept, tokenizer, np.random.default_rng(4))[0], step)
    assert not set(dropped["uid"]) & set(controller.pending)
    assert not controller.pending


def test_checkpoint_round_trip_continues_exactly(parquet, tmp_path, tokenizer) -> None:
    bonus = ("exit.diversity_bonus=centroid_reward", "exit.embedder=hashing")
    config = compose_config(parquet, tmp_path, *bonus)
    dataset = verl_dataset(config, tokenizer)
    original = build_controller(config, dataset, tokenizer)
    rng = np.random.default_rng(1)
    for step in range(1, 4):
        batch = original.next_batch_dict(4, step)
        original.shape_rewards(rollout(batch, tokenizer, rng)[0], step)
    folder = tmp_path / "ckpt" / "global_step_3"
    original.save(folder)
    assert (folder / "exit_archive.snap").is_file() and (folder / "exit_state.json").is_file()
    resumed = build_controller(config, dataset, tokenizer)
    assert resumed.load(folder)
    assert not build_controller(config, dataset, tokenizer).load(tmp_path / "empty")
    for step in range(4, 7):
        a, b = original.next_batch_dict(4, step), resumed.next_batch_dict(4, step)
        assert list(a["raw_prompt"]) == list(b["raw_prompt"])
        assert list(a["extra_info"]) == list(b["extra_info"])
        assert list(a["uid"]) == list(b["uid"])
        data, _ = rollout(a, tokenizer, np.random.default_rng(step))
        sa, _ = original.shape_rewards(data, step)
        sb, _ = resumed.shape_rewards(data, step)
        torch.testing.assert_close(sa, sb)
    assert original.curriculum.archive.to_bytes() == resumed.curriculum.archive.to_bytes()


def test_diversity_bonus_reaches_the_advantages(parquet, tmp_path, tokenizer) -> None:
    config = compose_config(
        parquet,
        tmp_path,
        "exit.diversity_bonus=centroid_reward",
        "exit.embedder=hashing",
        "exit.diversity_coef=1.0",
    )
    controller = build_controller(config, verl_dataset(config, tokenizer), tokenizer)
    batch = controller.next_batch_dict(4, 1)
    data, _ = rollout(batch, tokenizer, np.random.default_rng(2))
    shaped, metrics = controller.shape_rewards(data, 1)
    mask = data.batch["response_mask"]
    raw = (data.batch["rm_scores"] * mask).sum(dim=1)
    out = (shaped * mask).sum(dim=1)
    assert torch.all(out >= raw - 1e-6) and torch.all(out[raw == 0] == 0)  # multiplicative
    assert metrics["exit/bonus_mean"] >= 0


def test_bad_settings_fail_clearly(parquet, tmp_path, tokenizer) -> None:
    from exit_verl.verl.trainer import ExItTrainerMixin

    config = compose_config(parquet, tmp_path, "exit.p_replay=1.5")
    with pytest.raises(ValueError, match="p_replay"):
        build_controller(config, verl_dataset(config, tokenizer), tokenizer)
    with pytest.raises(ValueError, match="sync"):
        exit_trainer_class("async")
    cls = exit_trainer_class("sync")
    from verl.trainer.ppo.v1 import get_trainer_cls

    assert issubclass(cls, get_trainer_cls("sync")) and issubclass(cls, ExItTrainerMixin)
    # The mixin refuses estimators without groups before any work starts.
    probe = _probe_trainer(compose_config(parquet, tmp_path, "algorithm.adv_estimator=gae"))
    probe.train_dataset, probe.tokenizer = verl_dataset(probe.config, tokenizer), tokenizer
    with pytest.raises(ValueError, match="group-based"):
        probe._init_dataloader()
    probe.config = compose_config(parquet, tmp_path)
    probe._init_dataloader()
    assert len(probe.exit.curriculum.tasks) == len(probe.train_dataset)
    assert "grpo" in SUPPORTED_ESTIMATORS and "rloo" in SUPPORTED_ESTIMATORS


def _probe_trainer(config):
    """The mixin in front of a stand-in for verl's dataloader setup (which needs workers)."""
    from exit_verl.verl.trainer import ExItTrainerMixin

    class VerlDataloaderDone:
        def _init_dataloader(self) -> None:
            pass

    probe = object.__new__(type("Probe", (ExItTrainerMixin, VerlDataloaderDone), {}))
    probe.config = config
    return probe


def test_fetch_one_gen_batch_gives_verl_a_tensordict(parquet, tmp_path, tokenizer) -> None:
    cls = exit_trainer_class("sync")
    trainer = object.__new__(cls)
    trainer.config = compose_config(parquet, tmp_path)
    trainer.global_steps = 1
    dataset = verl_dataset(trainer.config, tokenizer)
    trainer.exit = build_controller(trainer.config, dataset, tokenizer)
    td = trainer._fetch_one_gen_batch()
    assert len(td) == trainer.config.data.train_batch_size
    assert len(list(td["raw_prompt"])) == len(td)


def test_enable_flag_picks_the_runner(parquet, tmp_path, monkeypatch) -> None:
    import verl.trainer.main_ppo as verl_main

    from exit_verl import main_ppo

    seen = {}
    monkeypatch.setattr(
        verl_main,
        "run_ppo",
        lambda cfg, task_runner_class: seen.update(cfg=cfg, runner=task_runner_class),
    )
    monkeypatch.setattr(verl_main, "validate_config", lambda **kw: None)  # needs GPUs
    config = compose_config(parquet, tmp_path, "exit.enable=false")
    main_ppo.main(config)
    assert seen["runner"] is verl_main.TaskRunnerV1
    # verl's main receives exactly what verl's own ppo_trainer composes from the same overrides.
    verl_overrides = [o for o in _overrides(parquet, tmp_path) if not o.startswith("exit.")]
    config_dir = str(Path(verl_main.__file__).parent / "config")
    with initialize_config_dir(config_dir=config_dir, version_base=None):
        expected = compose(config_name="ppo_trainer", overrides=verl_overrides)
    assert OmegaConf.to_container(seen["cfg"]) == OmegaConf.to_container(expected)

    from exit_verl.verl import runner

    monkeypatch.setattr("verl.utils.config.validate_config", lambda **kw: None)
    monkeypatch.setattr(
        "verl.trainer.main_ppo.run_ppo",
        lambda cfg, task_runner_class: seen.update(cfg=cfg, runner=task_runner_class),
    )
    main_ppo.main(compose_config(parquet, tmp_path))
    assert seen["runner"] is not verl_main.TaskRunnerV1 and seen["cfg"].exit.enable
    assert callable(runner.run_exit_ppo)


def test_cfg_job_prints_the_composed_config() -> None:
    import subprocess
    import sys

    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "exit_verl.main_ppo",
            "--cfg",
            "job",
            "exit.enable=true",
            "exit.p_diverge=0.2",
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    ).stdout
    assert "exit:\n  enable: true" in out and "p_diverge: 0.2" in out
    assert "actor_rollout_ref:" in out and "algorithm:" in out


def test_multi_output_samples_count_once() -> None:
    from exit_verl.verl.controller import final_rows

    uids = ["a", "a", "a", "b", "b"]
    keys = ["a_0_0", "a_0_1", "a_1_0", "b_0_0", "b_1_0"]
    assert final_rows(uids, keys) == [1, 2, 3, 4]  # a_0's last output is row 1
    assert final_rows(uids, None) == list(range(5))
    with pytest.raises(ValueError, match="keys for"):
        final_rows(uids, keys[:2])
    with pytest.raises(ValueError, match="session"):
        final_rows(["a"], ["a-0"])


class InMemoryTransferQueue:
    """The two TransferQueue calls the advantage step makes, over a dict (no Ray on CPU)."""

    def __init__(self) -> None:
        self.rows: dict[str, dict] = {}

    def kv_batch_put(self, keys, partition_id, fields=None, tags=None):
        from transfer_queue.metadata import KVBatchMeta

        for i, key in enumerate(keys):
            row = self.rows.setdefault(key, {})
            for name in [] if fields is None else list(fields.keys()):
                row[name] = fields[name][i]
        tags = tags or [{} for _ in keys]
        return KVBatchMeta(partition_id=partition_id, keys=list(keys), tags=tags)

    def kv_batch_get(self, keys, partition_id, select_fields=None):
        from tensordict import NonTensorStack, TensorDict

        present = [f for f in select_fields if all(f in self.rows[k] for k in keys)]
        out = {}
        for name in present:
            values = [self.rows[k][name] for k in keys]
            if isinstance(values[0], str):
                out[name] = NonTensorStack(*values)
            else:
                out[name] = torch.nested.as_nested_tensor(values, layout=torch.jagged)
        return TensorDict(out, batch_size=len(keys))


def test_trainer_advantage_step_uses_shaped_rewards(parquet, tmp_path, tokenizer, monkeypatch):
    """The mixin's `_compute_advantage` in front of verl's own, TransferQueue kept in memory."""
    import transfer_queue as tq
    from transfer_queue.metadata import KVBatchMeta

    fake = InMemoryTransferQueue()
    monkeypatch.setattr(tq, "kv_batch_get", fake.kv_batch_get)
    monkeypatch.setattr(tq, "kv_batch_put", fake.kv_batch_put)
    bonus = (
        "exit.diversity_bonus=centroid_reward",
        "exit.embedder=hashing",
        "exit.diversity_coef=1.0",
    )
    trainer = object.__new__(exit_trainer_class("sync"))
    trainer.config = compose_config(parquet, tmp_path, *bonus)
    trainer.global_steps = 1
    dataset = verl_dataset(trainer.config, tokenizer)
    trainer.exit = build_controller(trainer.config, dataset, tokenizer)
    batch = trainer.exit.next_batch_dict(4, 1)
    data, _ = rollout(batch, tokenizer, np.random.default_rng(5))
    uids = list(data.non_tensor_batch["uid"])
    keys = [f"{uid}_{i % GROUP}_0" for i, uid in enumerate(uids)]
    mask = data.batch["response_mask"]
    for i, key in enumerate(keys):
        width = int(mask[i].sum())
        fake.rows[key] = {
            "uid": uids[i],
            "responses": data.batch["responses"][i, :width],
            "response_mask": mask[i, :width],
            "rm_scores": data.batch["rm_scores"][i, :width],
        }
    metrics: dict = {}
    meta = KVBatchMeta(partition_id="train", keys=keys, tags=[{} for _ in keys])
    trainer._compute_advantage(meta, metrics)
    assert metrics["exit/archive_size"] == len(trainer.exit.curriculum.archive)
    raw = data.batch["rm_scores"].sum(dim=1)  # what verl's scorer gave
    stored = torch.stack([fake.rows[k]["rm_scores"].sum() for k in keys])
    assert torch.all(stored >= raw - 1e-6) and torch.any(stored > raw)  # the bonus was written
    advantages = torch.stack([fake.rows[k]["advantages"][-1] for k in keys]).view(-1, GROUP)
    assert torch.isfinite(advantages).all()
    # verl's GRPO on the rm_scores our step wrote back (the shaped ones) gives these advantages.
    checked = 0
    for group, values in enumerate(stored.view(-1, GROUP)):
        if values.unique().numel() > 1:
            expected = (values - values.mean()) / (values.std() + 1e-6)
            torch.testing.assert_close(advantages[group], expected, atol=1e-4, rtol=1e-4)
            checked += 1
    assert checked > 0
    assert not trainer.exit.pending


def test_groups_that_lost_samples_are_still_observed(parquet, tmp_path, tokenizer) -> None:
    config = compose_config(parquet, tmp_path)
    controller = build_controller(config, verl_dataset(config, tokenizer), tokenizer)
    batch = controller.next_batch_dict(4, 1)
    data, _ = rollout(batch, tokenizer, np.random.default_rng(6))
    keep = [i for i in range(len(data)) if i != 0]  # the first group lost one sample
    shaped, metrics = controller.shape_rewards(data.select_idxs(keep), 1)
    assert shaped.shape[0] == len(keep) and not controller.pending
    assert metrics["exit/archive_size"] == len(controller.curriculum.archive)


def _checkpoint_probe(config, tokenizer, dataset):
    """The mixin in front of stand-ins for verl's checkpoint methods (which need workers):
    saving writes verl's tracker file, loading sets global_steps from it, as verl does."""
    from verl.utils.checkpoint.checkpoint_manager import (
        find_latest_ckpt_path,
        get_checkpoint_tracker_filename,
    )

    from exit_verl.verl.trainer import ExItTrainerMixin

    class VerlCheckpoints:
        def _save_checkpoint(self) -> None:
            root = self.config.trainer.default_local_dir
            Path(root, f"global_step_{self.global_steps}").mkdir(parents=True, exist_ok=True)
            Path(get_checkpoint_tracker_filename(root)).write_text(str(self.global_steps))

        def _load_checkpoint(self) -> None:
            folder = find_latest_ckpt_path(self.config.trainer.default_local_dir)
            self.global_steps = 0 if folder is None else int(folder.split("global_step_")[-1])

    probe = object.__new__(type("Probe", (ExItTrainerMixin, VerlCheckpoints), {}))
    probe.config, probe.global_steps = config, 0
    probe.exit = build_controller(config, dataset, tokenizer)
    return probe


def test_trainer_checkpoint_hooks_resume_exactly(parquet, tmp_path, tokenizer) -> None:
    config = compose_config(parquet, tmp_path)
    dataset = verl_dataset(config, tokenizer)
    first = _checkpoint_probe(config, tokenizer, dataset)
    rng = np.random.default_rng(7)
    for step in range(1, 4):
        first.global_steps = step
        batch = first.exit.next_batch_dict(4, step)
        first.exit.shape_rewards(rollout(batch, tokenizer, rng)[0], step)
    first._save_checkpoint()
    assert (tmp_path / "ckpt" / "global_step_3" / "exit_state.json").is_file()
    resumed = _checkpoint_probe(config, tokenizer, dataset)
    resumed._load_checkpoint()
    assert resumed.global_steps == 3
    a, b = first.exit.next_batch_dict(4, 4), resumed.exit.next_batch_dict(4, 4)
    assert list(a["raw_prompt"]) == list(b["raw_prompt"]) and list(a["uid"]) == list(b["uid"])
    # A checkpoint written without ExIt state is refused rather than silently restarted.
    (tmp_path / "ckpt" / "global_step_3" / "exit_state.json").unlink()
    with pytest.raises(FileNotFoundError, match="exit_state.json"):
        _checkpoint_probe(config, tokenizer, dataset)._load_checkpoint()
