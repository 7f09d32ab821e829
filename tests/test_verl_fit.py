"""verl's real trainer class drives `fit` on CPU with ExIt (tests/verl_fit_harness.py says
exactly what is real and what is faked). TransferQueue runs on a local Ray started once for the
module; each test composes verl's config, builds the trainer and fits a few steps.

Expected values are computed here from first principles: rewards with verl's gsm8k scorer on
the response text, GRPO advantages by hand, the scripted LLM's known answers.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from deps import need

ray = need("ray")
need("verl")

import verl_fit_harness as harness  # noqa: E402
from verl_fit_checks import (  # noqa: E402
    GROUP,
    Spy,
    check_advantages,
    gsm8k_score,
    step_metrics,
)

from exit_verl.curriculum import ExItCurriculum, Feedback  # noqa: E402
from exit_verl.verl.rows import parse_key  # noqa: E402

DP = 3  # data-parallel ranks of the fake actor: 15 or 16 rows are padded to 24 by verl


pytestmark = [pytest.mark.usefixtures("transfer_queue_on_ray"), pytest.mark.slow]


@pytest.fixture(scope="module")
def data(fit_data) -> dict:
    return fit_data


def compose(data, work: Path, *overrides: str):
    return harness.compose_with(data, work, *overrides)


# -- the main path and resume -----------------------------------------------------------------


def test_fit_on_verls_rows_and_resume_exactly(data, tmp_path, monkeypatch) -> None:
    overrides = ("+exit.diversity_bonus=none", "trainer.save_freq=3")
    spy = Spy(monkeypatch)
    whole = harness.fit(
        compose(data, tmp_path / "whole", "trainer.total_training_steps=6", *overrides),
        tmp_path / "whole.jsonl",
        dp=DP,
    )
    metrics = step_metrics(whole)
    assert sorted(s for s, m in metrics.items() if "exit/prompts" in m) == [1, 2, 3, 4, 5, 6]

    # verl padded each batch for its DP ranks; padding rows carry no advantage.
    for update in whole.actor.updates:
        assert len(update.keys) % DP == 0 and len(update.real_rows()) < len(update.keys)
        for i in set(range(len(update.keys))) - set(update.real_rows()):
            assert not update.advantages[i].any()
        check_advantages(update)

    # The curriculum saw verl's scorer's reward of every response, also for the multi-turn row
    # whose reward sits on a mask-0 token; the failed session is missing from its group.
    multi_turn = failed = 0
    for seen in spy.observed:
        truth = str(seen["instance"].answer)
        assert seen["rewards"] == [gsm8k_score(t, truth) for t in seen["texts"]]
        multi_turn += sum("checked" in t for t in seen["texts"])
        failed += len(seen["texts"]) == GROUP - 1
        assert seen["trained"]
    assert multi_turn > 0 and failed > 0
    for step, m in metrics.items():
        observed = [s for s in spy.observed if s["step"] == step]
        assert m["exit/groups_trained"] == len(observed) == len(spy.issued[step]) == 4
        assert m["critic/score/mean"] == pytest.approx(m["exit/task_reward_mean"], abs=1e-6)
    assert metrics[6]["exit/archive_size"] > 0
    assert sum(metrics[s]["exit/replay_fraction"] for s in metrics) > 0

    # Interrupted at 3 and resumed: the same prompts at steps 4..6 and the same archive bytes.
    issued_whole = {s: spy.issued[s] for s in (4, 5, 6)}
    final_whole = whole.trainer.exit.curriculum.archive.to_bytes()
    spy.issued.clear()
    first = compose(data, tmp_path / "split", "trainer.total_training_steps=3", *overrides)
    harness.fit(first, tmp_path / "first.jsonl", dp=DP)
    second = compose(data, tmp_path / "split", "trainer.total_training_steps=6", *overrides)
    resumed = harness.fit(second, tmp_path / "second.jsonl", dp=DP)
    assert resumed.actor.loaded == [str(tmp_path / "split" / "ckpt" / "global_step_3" / "actor")]
    assert {s: spy.issued[s] for s in (4, 5, 6)} == issued_whole
    assert resumed.trainer.exit.curriculum.archive.to_bytes() == final_whole
    for name in ("exit_archive.snap", "exit_state.json"):
        a = tmp_path / "whole" / "ckpt" / "global_step_6" / name
        b = tmp_path / "split" / "ckpt" / "global_step_6" / name
        assert a.read_bytes() == b.read_bytes(), name


# -- defects ----------------------------------------------------------------------------------


def test_filter_groups_drops_are_observed_and_metrics_are_per_step(data, tmp_path, monkeypatch):
    spy = Spy(monkeypatch)
    run = harness.fit(
        compose(
            data,
            tmp_path,
            "algorithm.filter_groups.enable=True",
            "+exit.diversity_bonus=none",
            "trainer.total_training_steps=4",
        ),
        tmp_path / "m.jsonl",
        dp=DP,
    )
    assert run.trainer.config.data.gen_batch_size == 1  # verl's refill path: one prompt a call
    rescored = 0
    for step, m in step_metrics(run).items():
        issued = spy.issued[step]
        seen = [s for s in spy.observed if s["step"] == step]
        dropped = [s for s in seen if not s["trained"]]
        verl_dropped = m.get("training/filter_groups/evicted_samples", 0) + m.get(
            "training/filter_groups/discarded_surplus_samples", 0
        )
        assert len(dropped) == m["exit/groups_dropped"] == verl_dropped
        assert m["exit/groups_trained"] == len(seen) - len(dropped) == 4
        # Every prompt of the step was observed (none lost: no group failed completely).
        assert {s["uid"] for s in seen} == {p["uid"] for p in issued}
        # Step-level metrics over all the step's prompts, not the last one-prompt call.
        replays = [p["extra_info"]["exit_archive_id"] is not None for p in issued]
        assert m["exit/prompts"] == len(issued) > 4
        assert m["exit/replay_fraction"] == pytest.approx(np.mean(replays))
        for s in dropped:
            if s["score_after"] is not None and len(set(s["rewards"])) == 1:
                assert s["score_after"] == 0.0  # an always-solved replay loses its score
                rescored += 1
    assert rescored > 0


def test_improve_prompts_are_fitted_to_verls_prompt_budget(data, tmp_path) -> None:
    budget = 150
    run = harness.fit(
        compose(
            data,
            tmp_path,
            f"data.max_prompt_length={budget}",
            "data.max_response_length=256",
            "+exit.diversity_bonus=none",
            "trainer.total_training_steps=4",
        ),
        tmp_path / "m.jsonl",
        dp=DP,
        filler=12,
    )
    tokenizer = run.trainer.tokenizer
    clipped = sum(m["exit/prompts_clipped"] for m in step_metrics(run).values())
    assert clipped > 0
    for ids in run.llm.prompts:
        assert len(ids) <= budget
        text = tokenizer.decode(ids)
        assert text.startswith(f"<|system|>{harness.SYSTEM}")  # not left-truncated
        assert harness.QUESTION.search(text)


def test_advantage_scale_multiplies_verls_advantages(data, tmp_path, monkeypatch) -> None:
    """The curriculum's training rewards go to verl's estimator, its advantage scale
    multiplies the estimator's advantages, and rm_scores keep the task rewards. The
    curriculum's Feedback is replaced by values that a per-group affine map cannot undo."""
    real = ExItCurriculum.observe

    def observe(curriculum, batch, responses, rewards, step, **kw):
        fb = real(curriculum, batch, responses, rewards, step, **kw)  # the archive still learns
        lengths = np.array([[len(t) for t in group] for group in responses], dtype=np.float64)
        train = np.asarray(rewards) + 0.01 * lengths
        scale = 0.5 + 0.25 * (lengths % 3)
        return Feedback(train, scale, fb.learnability)

    monkeypatch.setattr(ExItCurriculum, "observe", observe)
    spy = Spy(monkeypatch)
    run = harness.fit(
        compose(data, tmp_path, "+exit.diversity_bonus=none", "trainer.total_training_steps=2"),
        tmp_path / "m.jsonl",
        dp=DP,
    )
    for update, (_, m) in zip(run.actor.updates, sorted(step_metrics(run).items()), strict=True):
        assert check_advantages(update, spy.signal) > 0
        keys = [parse_key(update.keys[i])[:2] for i in update.real_rows()]
        task = [float(update.rm_scores[i].sum()) for i in update.real_rows()]
        assert set(task) <= {0.0, 1.0}  # rm_scores hold the task rewards again
        assert m["critic/score/mean"] == pytest.approx(np.mean(task), abs=1e-5)
        train = [spy.signal[k][0] for k in keys]
        assert m["critic/rewards/mean"] == pytest.approx(np.mean(train), abs=1e-4)
        assert m["exit/bonus_magnitude"] > 0


def test_the_diversity_bonus_scales_advantages_not_scores(data, tmp_path, monkeypatch) -> None:
    spy = Spy(monkeypatch)
    run = harness.fit(
        compose(data, tmp_path, "+exit.diversity_bonus=centroid", "trainer.total_training_steps=2"),
        tmp_path / "m.jsonl",
        dp=DP,
        filler=3,
    )
    scales = [scale for _, scale in spy.signal.values()]
    assert min(scales) < 1.0 and all(s >= 0 for s in scales)  # the bonus was active
    for update, (_, m) in zip(run.actor.updates, sorted(step_metrics(run).items()), strict=True):
        check_advantages(update, spy.signal)
        task = [float(update.rm_scores[i].sum()) for i in update.real_rows()]
        assert m["critic/score/mean"] == pytest.approx(np.mean(task), abs=1e-5)
        assert m["critic/rewards/mean"] == pytest.approx(np.mean(task), abs=1e-5)


def test_old_exit_files_are_pruned_with_the_actor_checkpoints(data, tmp_path) -> None:
    harness.fit(
        compose(
            data,
            tmp_path,
            "trainer.max_actor_ckpt_to_keep=2",
            "trainer.save_freq=1",
            "trainer.total_training_steps=4",
        ),
        tmp_path / "m.jsonl",
        dp=DP,
    )
    root = tmp_path / "ckpt"
    assert sorted(p.name for p in root.glob("global_step_*")) == [
        f"global_step_{s}" for s in (1, 2, 3, 4)
    ]
    for step in (1, 2, 3, 4):
        folder = root / f"global_step_{step}"
        kept = step > 2
        assert (folder / "actor").exists() == kept  # verl's rule on the actor
        assert (folder / "exit_archive.snap").exists() == kept
        assert (folder / "exit_state.json").exists() == kept


def test_embedding_time_is_reported_per_step(data, tmp_path) -> None:
    run = harness.fit(
        compose(data, tmp_path, "+exit.diversity_bonus=centroid", "trainer.total_training_steps=2"),
        tmp_path / "m.jsonl",
        dp=DP,
    )
    for m in step_metrics(run).values():
        assert m["timing_s/exit_embed"] > 0
        # Observing (embedding included) has its own timer: it runs beside verl's log-prob
        # pass, and verl's "adv" timer holds only the wait for it.
        assert m["timing_s/exit_observe"] >= m["timing_s/exit_embed"]
        assert m["timing_s/exit_wait"] <= m["timing_s/adv"]
        samples = m["exit/groups_trained"] * GROUP - 1  # the failing row's session 1 is missing
        assert m["exit/embed_texts"] in (samples, samples + 1)


def _validated_run(data, tmp_path, samples: int, *overrides: str) -> tuple[harness.Run, list]:
    """A 2-step fit validating before training and at step 2 with K = 2, `samples` chains per
    task; returns the run and its validations as (step, metrics)."""
    run = harness.fit(
        compose(
            data,
            tmp_path,
            "+exit.val_iterations=2",
            f"+exit.val_samples={samples}",
            "actor_rollout_ref.rollout.val_kwargs.temperature=1.0",
            "trainer.val_before_train=True",
            "trainer.test_freq=2",
            "trainer.total_training_steps=2",
            *overrides,
        ),
        tmp_path / "m.jsonl",
        dp=DP,
    )
    validations = [m for m in step_metrics(run).items() if "exit_val/mean@0" in m[1]]
    assert [step for step, _ in validations] == [0, 2]
    return run, validations


def _val_tasks(data) -> list[tuple[int, int, str]]:
    tasks = []
    for row in data["val_rows"]:
        text = row["question"][-1]["content"]
        a, b = (int(x) for x in harness.QUESTION.search(text).groups())
        tasks.append((a, b, text))
    return tasks


def test_multistep_validation_runs_through_verls_validate(data, tmp_path) -> None:
    samples = 2
    _, validations = _validated_run(data, tmp_path, samples)
    # The scripted LLM answers a base prompt right iff a % 4 == 3 or (a + b) % 3 != 0 (each
    # chain is its own one-sample prompt, session 0), every improve prompt right, and nothing
    # for the [fail-all] task.
    tasks = [(a, b, harness.FAIL_ALL_MARK in text) for a, b, text in _val_tasks(data)]
    first = [0.0 if fail else float(a % 4 == 3 or (a + b) % 3 != 0) for a, b, fail in tasks]
    later = [0.0 if fail else 1.0 for _, _, fail in tasks]
    for _, m in validations:
        assert m["exit_val/mean@0"] == pytest.approx(np.mean(first))
        assert m["exit_val/mean@1"] == m["exit_val/mean@2"] == pytest.approx(np.mean(later))
        assert m["exit_val/missing@0"] == m["exit_val/missing@2"] == samples  # no output
        assert m["exit_val/chains"] == samples * len(tasks)
        assert "val-core/openai/gsm8k/acc/mean@1" in m  # verl's own validation still runs


def test_step_zero_is_verls_regular_validation_when_they_agree(data, tmp_path) -> None:
    samples = 2  # = val_kwargs.n: the regular validation generates exactly step 0
    run, validations = _validated_run(
        data,
        tmp_path,
        samples,
        f"actor_rollout_ref.rollout.val_kwargs.n={samples}",
        "actor_rollout_ref.rollout.val_kwargs.do_sample=True",
    )
    tasks = _val_tasks(data)

    # Step 0 is one verl validation with `samples` sessions per task; session s of a [fail]
    # prompt fails when s == 1, every session of a [fail-all] one.
    def failed(text: str, session: int) -> bool:
        return harness.FAIL_ALL_MARK in text or (harness.FAIL_MARK in text and session == 1)

    first = [
        0.0 if failed(text, s) else float(a % 4 == 3 or (a + b + s) % 3 != 0)
        for a, b, text in tasks
        for s in range(samples)
    ]
    later = [0.0 if harness.FAIL_ALL_MARK in text else 1.0 for _, _, text in tasks]
    for _, m in validations:
        assert m["exit_val/mean@0"] == pytest.approx(np.mean(first))
        assert m["exit_val/mean@1"] == m["exit_val/mean@2"] == pytest.approx(np.mean(later))
        assert m["exit_val/missing@0"] == samples + 1
        assert m["exit_val/chains"] == samples * len(tasks)
        assert "val-core/openai/gsm8k/acc/mean@2" in m  # verl's metrics of the same generations
    # Each validation asked for each task's base prompt `samples` times, not twice that.
    pairs = {(a, b) for a, b, _ in tasks}
    base_asks = 0
    for ids in run.llm.prompts:
        prompt = run.llm.tokenizer.decode(ids)
        found = harness.QUESTION.findall(prompt)
        base = "We add" not in prompt and "Current response" not in prompt
        if found and base and tuple(map(int, found[-1])) in pairs:
            base_asks += 1
    assert base_asks == len(validations) * samples * len(tasks)
