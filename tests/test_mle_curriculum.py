"""ExIt from a single ML-engineering task at the curriculum level (no verl, no sandbox): the
archive grows from one base task, replayed prompts show the attempt's code and error trace,
improve steps get the improvement reward, `archive_distinct` counts different attempts, and
the multi-step evaluation shows each answer's feedback in the next improve prompt."""

from __future__ import annotations

import numpy as np
import pytest

from exit_verl import ExItConfig, ExItCurriculum, evaluate_self_improvement


def attempt(step: int, i: int, j: int) -> tuple[str, float, str | None]:
    """(response, normalized score, error trace) of a made-up script."""
    if (step + i + j) % 3 == 0:
        return f"```python\nprint('model {step}-{i}-{j}')\n```", 0.25 * (j % 4), None
    code = f"```python\nraise ValueError('bug {step}-{i}-{j}')\n```"
    return code, 0.0, f"Traceback (most recent call last):\nValueError: bug {step}-{i}-{j}"


def test_single_task_archive_grows_and_replays_carry_code_and_traces() -> None:
    cfg = ExItConfig.preset("exit", "mle", embedder="hashing", min_archive_size=1, p_replay=1.0)
    task = {"prompt": "# Iris\nWrite a script that writes submission.csv.", "answer": "iris"}
    cur = ExItCurriculum(cfg, [task], seed=3)
    sizes, replays = [], 0
    for step in range(6):
        batch = cur.next_batch(2, step)
        results = [[attempt(step, i, j) for j in range(4)] for i in range(len(batch))]
        for inst in batch:
            if inst.kind == "base":
                continue
            replays += 1
            shown = inst.prompt[-1]["content"]
            last = inst.history.turns[-1]
            assert last.response in shown and "## Current response" in shown
            assert f"## Error trace\n{last.feedback or '(none)'}" in shown
        rewards = np.array([[r[1] for r in group] for group in results])
        fb = cur.observe(
            batch,
            [[r[0] for r in group] for group in results],
            rewards,
            step,
            feedback=[[r[2] for r in group] for group in results],
        )
        for i, inst in enumerate(batch):
            if inst.kind == "improve":
                prev = inst.previous_reward
                expected = [
                    max(0.0, (r - prev) / (1 - prev)) if prev < 1 else float(r == 1)
                    for r in rewards[i]
                ]
                assert fb.rewards[i] == pytest.approx(expected)
            else:
                assert fb.rewards[i] == pytest.approx(rewards[i])
        sizes.append(cur.metrics()["archive_size"])
    assert len(cur.tasks) == 1 and replays > 0
    assert sizes[-1] > 1 and cur.metrics()["archive_depth_max"] >= 2
    archived = [cur.archive.get([i])[0] for i in cur.archive.ids()]
    assert cur.metrics()["archive_distinct"] == len(set(archived)) > 1
    assert any(b"ValueError: bug" in p for p in archived)  # traces stored with attempts

    restored = ExItCurriculum(cfg, [task], seed=3)
    restored.load_state_dict(cur.state_dict())
    assert restored.metrics()["archive_distinct"] == cur.metrics()["archive_distinct"]
    a, b = cur.next_batch(2, 6), restored.next_batch(2, 6)
    assert [x.prompt for x in a] == [x.prompt for x in b]


def test_evaluation_shows_each_answers_feedback_in_the_next_prompt() -> None:
    seen: list[list[dict]] = []

    def generate(prompts):
        seen.append(prompts)
        return [f"answer {len(seen)}" for _ in prompts]

    result = evaluate_self_improvement(
        generate,
        lambda task, answer: 0.0,
        [{"prompt": "Fit a model."}],
        2,
        domain="mle",
        feedback=lambda task, answer: f"NameError in {answer}",
    )
    assert len(result["mean"]) == 3
    assert "## Error trace\nNameError in answer 1" in seen[1][0][-1]["content"]
    assert "## Error trace\nNameError in answer 2" in seen[2][0][-1]["content"]
    plain = evaluate_self_improvement(
        generate, lambda t, a: 0.0, [{"prompt": "x"}], 1, domain="mle"
    )
    assert plain["iterations"] == 1 and "## Error trace\n(none)" in seen[-1][0][-1]["content"]
