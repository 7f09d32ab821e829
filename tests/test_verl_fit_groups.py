"""Groups are tracked per uid through verl's real fit loop (tests/verl_fit_harness.py): every
issued prompt is observed exactly once, trained or dropped, whichever local update or step its
rows arrive in; prompts verl removes without rows are lost, not pending; in verl's
colocate_async loop groups arrive late, and the ones verl drops (stale, failed) are observed
with their reason."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
from deps import need

need("ray")
need("verl")

import verl_fit_harness as harness  # noqa: E402
from verl_fit_checks import Spy, check_advantages, step_metrics  # noqa: E402
from verl_fit_harness import compose_with as compose  # noqa: E402

DP = 2
pytestmark = [pytest.mark.usefixtures("transfer_queue_on_ray"), pytest.mark.slow]


@pytest.fixture(scope="module")
def data(fit_data) -> dict:
    return fit_data


def issued_uids(spy: Spy) -> list[str]:
    return [p["uid"] for prompts in spy.issued.values() for p in prompts]


def test_parameter_sync_step_2_observes_every_group_once(data, tmp_path, monkeypatch) -> None:
    """Two local updates per step: each trains half the step's groups; all are observed."""
    spy = Spy(monkeypatch)
    run = harness.fit(
        compose(
            data,
            tmp_path,
            "+trainer.v1.sync.parameter_sync_step=2",
            "+exit.diversity_bonus=none",
            "trainer.total_training_steps=3",
        ),
        tmp_path / "m.jsonl",
        dp=DP,
    )
    assert run.trainer.parameter_sync_step == 2
    assert len(run.actor.updates) == 6  # two local updates in each of the 3 steps
    for update in run.actor.updates:
        check_advantages(update)
    observed = Counter(seen["uid"] for seen in spy.observed)
    assert sorted(observed) == sorted(issued_uids(spy)) and set(observed.values()) == {1}
    assert all(seen["trained"] for seen in spy.observed) and not spy.lost
    for step, m in step_metrics(run).items():
        assert m["exit/groups_trained"] == 4 == len(spy.issued[step])
        assert m["exit/groups_lost"] == 0 and m["exit/groups_pending"] == 0
        assert {s["uid"] for s in spy.observed if s["step"] == step} == {
            p["uid"] for p in spy.issued[step]
        }
    assert not run.trainer.exit.pending
    assert step_metrics(run)[3]["exit/archive_size"] > 0


def test_a_group_without_rows_is_lost_not_kept_pending(tmp_path, monkeypatch) -> None:
    rows = [harness.task_row(i, 3 + 2 * i, 5 + i) for i in range(4)]
    rows[3] = harness.task_row(3, 9, 8, mark=f" {harness.FAIL_ALL_MARK}")
    data = harness.fit_data(tmp_path / "data", train_rows=rows)
    spy = Spy(monkeypatch)
    run = harness.fit(
        compose(data, tmp_path, "+exit.diversity_bonus=none", "trainer.total_training_steps=1"),
        tmp_path / "m.jsonl",
        dp=DP,
    )
    failing = [p["uid"] for p in spy.issued[1] if harness.FAIL_ALL_MARK in str(p["raw_prompt"])]
    assert len(failing) == 1 and spy.lost == set(failing)
    m = step_metrics(run)[1]
    assert m["exit/groups_lost"] == 1 and m["exit/groups_trained"] == 3
    assert not run.trainer.exit.pending


def test_colocate_async_observes_late_stale_and_failed_groups(data, tmp_path, monkeypatch):
    """verl's colocate_async loop with one warm-up batch and an off-policy limit of one step:
    the warm-up's groups not trained in step 1 are stale in step 2 and dropped (observed), the
    task with a failing session is dropped as failed and refilled."""
    import transfer_queue as tq

    from exit_verl.verl.replay_buffer import ExItReplayBufferAsync

    spy = Spy(monkeypatch)
    run = harness.fit(
        compose(
            data,
            tmp_path,
            "trainer.v1.trainer_mode=exit_colocate_async",
            "trainer.v1.colocate_async.num_warmup_batches=1",
            "trainer.v1.sampler.max_off_policy_threshold=1",
            "+exit.diversity_bonus=none",
            "trainer.total_training_steps=3",
        ),
        tmp_path / "m.jsonl",
        dp=DP,
    )
    trainer = run.trainer
    assert trainer.trainer_mode == "colocate_async"
    assert isinstance(trainer.replay_buffer, ExItReplayBufferAsync)
    assert trainer.config.data.gen_batch_size == 1  # verl's exact refills

    # Every issued prompt was resolved at most once, and the unresolved ones are exactly the
    # prompt groups still in TransferQueue (what verl checkpoints in async mode).
    resolved = [seen["uid"] for seen in spy.observed] + sorted(spy.lost)
    assert len(resolved) == len(set(resolved))
    pending = set(trainer.exit.pending)
    assert set(resolved) | pending == set(issued_uids(spy)) and not set(resolved) & pending
    tags = tq.kv_list("train").get("train", {})
    in_queue = {key for key, tag in tags.items() if tag.get("is_prompt")}
    assert pending == in_queue

    dropped = Counter(seen["reason"] for seen in spy.observed if not seen["trained"])
    assert dropped["stale"] > 0 and dropped["failed"] > 0
    metrics = step_metrics(run)
    for step, m in metrics.items():
        assert m["exit/groups_trained"] == 4
        for reason in ("stale", "failed"):
            counted = sum(
                1
                for s in spy.observed
                if s["step"] == step and not s["trained"] and s["reason"] == reason
            )
            assert m.get(f"exit/groups_dropped_{reason}", 0) == counted
    assert metrics[3]["exit/groups_pending"] == len(pending)
    # Stale groups were observed one step after they were issued.
    assert max(m["exit/group_staleness_max"] for m in metrics.values()) >= 1
    assert metrics[3]["exit/archive_size"] > 0


def test_the_background_observation_overlaps_verls_log_prob_pass(data, tmp_path, monkeypatch):
    """The observation of a local update starts when verl has balanced its batch and is
    awaited at the advantage step: slowed down, it runs while verl computes log-probs."""
    import time

    from exit_verl.verl.controller import ExItController

    observe = ExItController._observe
    log_prob = harness.FakeActor.compute_log_prob
    timeline: list[tuple[str, float]] = []

    def slow_observe(controller, rows, step, trained, reason):
        timeline.append(("observe-start", time.perf_counter()))
        time.sleep(0.5)
        return observe(controller, rows, step, trained, reason)

    def slow_log_prob(actor, batch):
        timeline.append(("log-prob-start", time.perf_counter()))
        time.sleep(0.5)
        out = log_prob(actor, batch)
        timeline.append(("log-prob-end", time.perf_counter()))
        return out

    monkeypatch.setattr(ExItController, "_observe", slow_observe)
    monkeypatch.setattr(harness.FakeActor, "compute_log_prob", slow_log_prob)
    run = harness.fit(
        compose(data, tmp_path, "+exit.diversity_bonus=none", "trainer.total_training_steps=1"),
        tmp_path / "m.jsonl",
        dp=DP,
    )
    events = dict(timeline)
    assert events["observe-start"] < events["log-prob-end"]  # ran during verl's pass
    m = step_metrics(run)[1]
    assert m["timing_s/exit_observe"] >= 0.5 and m["timing_s/exit_wait"] < 0.45


@pytest.mark.parametrize("mode", ["exit", "exit_colocate_async"])
def test_exit_files_are_copied_to_default_hdfs_dir(data, tmp_path, mode) -> None:
    remote = tmp_path / "remote"
    harness.fit(
        compose(
            data,
            tmp_path,
            f"trainer.v1.trainer_mode={mode}",
            f"trainer.default_hdfs_dir={remote}",
            "trainer.save_freq=1",
            "trainer.total_training_steps=2",
        ),
        tmp_path / "m.jsonl",
        dp=DP,
    )
    for step in (1, 2):
        local = tmp_path / "ckpt" / f"global_step_{step}"
        for name in ("exit_archive.snap", "exit_state.json"):
            copied = Path(remote, f"global_step_{step}", name)
            assert copied.read_bytes() == (local / name).read_bytes(), copied


ASYNC = (
    "trainer.v1.trainer_mode=exit_colocate_async",
    "trainer.v1.colocate_async.num_warmup_batches=1",
    "+exit.diversity_bonus=none",
)


def test_colocate_async_checkpoints_its_prompts_in_flight_and_resumes_them(
    data, tmp_path, monkeypatch
) -> None:
    """The prompts in flight at a save are in exit_state.json, as verl's TransferQueue holds
    their groups; on resume verl re-issues or trains them and ExIt observes each of them."""
    import json

    spy = Spy(monkeypatch)
    first = harness.fit(
        compose(data, tmp_path, *ASYNC, "trainer.save_freq=2", "trainer.total_training_steps=2"),
        tmp_path / "first.jsonl",
        dp=DP,
    )
    in_flight = set(first.trainer.exit.pending)
    assert len(in_flight) >= 4  # the warm-up batch keeps a step's prompts in flight
    state = json.loads((tmp_path / "ckpt" / "global_step_2" / "exit_state.json").read_text())
    assert {p["uid"] for p in state["pending"]} == in_flight
    assert (tmp_path / "ckpt" / "global_step_2" / "transfer_queue").is_dir()

    # Resumed in sync mode, those prompts could never arrive: refused.
    with pytest.raises(ValueError, match="exit_colocate_async"):
        harness.fit(
            compose(data, tmp_path, "trainer.total_training_steps=3"),
            tmp_path / "sync.jsonl",
            dp=DP,
        )

    spy.observed.clear()
    resumed = harness.fit(
        compose(data, tmp_path, *ASYNC, "trainer.total_training_steps=3"),
        tmp_path / "second.jsonl",
        dp=DP,
    )
    assert resumed.trainer.global_steps >= 3
    seen = {s["uid"]: s for s in spy.observed}
    arrived = in_flight & (set(seen) | spy.lost)
    assert arrived  # groups issued before the save were observed after the resume
    assert all(seen[uid]["step"] == 3 for uid in arrived if uid in seen)
    assert in_flight <= arrived | set(resumed.trainer.exit.pending)
    m = step_metrics(resumed)[3]
    assert m["exit/groups_trained"] == 4 and m["exit/group_staleness_max"] >= 1
