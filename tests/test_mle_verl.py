"""ML engineering through verl's real fit loop (tests/verl_fit_harness.py: verl's trainer,
agent loop, reward loop and TransferQueue; a scripted LLM): a run from ONE competition whose
scripts run in the sandbox from verl's reward worker, and whose error traces travel verl's
rows -> the controller -> the archive -> the next improve prompt, in training and in the
multi-step validation.

The scripted LLM writes a failing script (raising an error with a unique mark) or a working
one on base prompts, and fixes an attempt only when the prompt shows that attempt's error
trace — so a working improve step proves the trace reached the prompt.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest
from deps import need, need_sandbox

ray = need("ray")
need("verl")

sys.path.insert(0, str(Path(__file__).parent))
import mle_scripts as scripts  # noqa: E402
import verl_fit_harness as harness  # noqa: E402

from exit_verl.demo.mle_data import rows  # noqa: E402
from exit_verl.domains import mle  # noqa: E402
from exit_verl.verl.controller import ExItController  # noqa: E402

need_sandbox()

REWARD_FILE = Path(__file__).parents[1] / "python" / "exit_verl" / "verl" / "mle_reward.py"
MARK = re.compile(r"MARK(\d+)")
GROUP = 4


class ScriptedEngineer(harness.ScriptedLLM):
    """Base prompts: session 0 and 2 raise `ValueError: MARK<n>`, session 1 writes the iris
    rule, session 3 copies the sample submission. Improve / diverge prompts: the iris rule if
    the prompt shows the error of the attempt it shows (same mark), else a new failure."""

    def answer_text(self, prompt: str, session: int) -> str:
        self.marks = getattr(self, "marks", 0) + 1
        failing = f"raise ValueError('MARK{self.marks}')\n"
        if "## Current response" in prompt:
            attempt = prompt.split("## Current response", 1)[1].split("## Error trace", 1)
            attempt_marks = MARK.findall(attempt[0])
            trace_marks = MARK.findall(attempt[1]) if len(attempt) > 1 else []
            fixed = attempt_marks and trace_marks and attempt_marks[-1] == trace_marks[-1]
            code = scripts.IRIS_RULE if fixed else failing
        else:
            code = [failing, scripts.IRIS_RULE, failing, scripts.CONSTANT][session % 4]
        return f"Here is my script.\n```python\n{code}```\n"


# ~2 min (Ray and verl start-up); tests/test_mle_e2e.py is the default suite's mle proof.
pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("transfer_queue_on_ray")]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """3 steps from the single competition "iris", validation on "wine" (K = 1) first."""
    work = tmp_path_factory.mktemp("mle_fit")
    model = harness.make_model_dir(work / "model")
    # The validation task is iris too (another row), so the scripted fix scores there as well.
    train = harness.write_parquet(work / "train.parquet", rows(["iris"], 20))
    val = harness.write_parquet(work / "val.parquet", rows(["iris"], 20))
    config = harness.compose(
        work,
        model,
        train,
        val,
        "data.prompt_key=prompt",
        "data.train_batch_size=2",
        "data.max_prompt_length=1536",
        "data.max_response_length=512",
        "actor_rollout_ref.rollout.n=4",
        f"reward.custom_reward_function.path={REWARD_FILE}",
        "reward.custom_reward_function.name=compute_score",
        "+reward.custom_reward_function.reward_kwargs.timeout_s=20",
        "+reward.custom_reward_function.reward_kwargs.concurrency=2",
        "+exit.domain=mle",
        "+exit.p_replay=1.0",
        "exit.min_archive_size=1",
        "+exit.diversity_bonus=none",
        "+exit.val_iterations=1",
        "trainer.val_before_train=True",
    )
    observed: list[dict] = []
    observe = ExItController.observe

    def spy(controller, rows_, step, trained):
        instances = {uid: inst for uid, (inst, _) in controller.pending.items()}
        signal = observe(controller, rows_, step, trained)
        for (uid, session), (train_reward, _) in signal.items():
            row = rows_.session_finals()[(uid, session)]
            observed.append(
                {
                    "step": step,
                    "instance": instances[uid],
                    "text": rows_.texts[row],
                    "reward": float(rows_.outcome[row]),
                    "training_reward": train_reward,
                    "feedback": rows_.feedback(row),
                }
            )
        return signal

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(ExItController, "observe", spy)
        result = harness.fit(config, work / "metrics.jsonl", dp=2, llm_factory=ScriptedEngineer)
    result.observed = observed
    return result


def test_sandbox_scores_are_the_rewards_and_traces_come_back(run) -> None:
    rule = mle.run(mle.get_task("iris"), scripts.IRIS_RULE).score
    assert rule > 0.9
    for seen in run.observed:
        if "raise ValueError" in seen["text"]:
            mark = MARK.search(seen["text"]).group(0)
            assert seen["reward"] == 0.0
            assert "Traceback" in seen["feedback"] and f"ValueError: {mark}" in seen["feedback"]
        elif "petal_length_cm" in seen["text"]:
            assert seen["reward"] == pytest.approx(rule) and seen["feedback"] is None
        else:  # the constant submission
            assert seen["reward"] == 0.0 and seen["feedback"] is None


def test_archive_grows_from_one_task_and_replays_carry_code_and_traces(run) -> None:
    controller = run.trainer.exit
    assert len(controller.curriculum.tasks) == 1  # a single task instance
    metrics = {m["step"]: m["data"] for m in run.metrics()}
    assert metrics[3]["exit/archive_size"] > 1 and metrics[3]["exit/archive_distinct"] > 1
    assert metrics[3]["exit/archive_depth_max"] >= 1  # a child of an archived attempt
    replays = [s for s in run.observed if s["instance"].kind != "base"]
    assert replays and {s["step"] for s in replays} == {2, 3}
    for seen in replays:
        inst = seen["instance"]
        shown = inst.prompt[-1]["content"]
        last = inst.history.turns[-1]
        assert last.response in shown  # the previous code, whole
        if "raise ValueError" in last.response:
            mark = MARK.search(last.response).group(0)
            assert last.feedback and f"ValueError: {mark}" in last.feedback
            assert f"## Error trace\n{last.feedback}" in shown
            assert "petal_length_cm" in seen["text"]  # the scripted fix, enabled by the trace
        else:
            assert "## Error trace\n(none)" in shown


def test_improve_steps_get_the_improvement_reward(run) -> None:
    improve = [s for s in run.observed if s["instance"].kind == "improve"]
    assert improve
    for seen in improve:
        before = seen["instance"].previous_reward
        expected = max(0.0, (seen["reward"] - before) / (1 - before)) if before < 1 else 0.0
        assert seen["training_reward"] == pytest.approx(expected)
    for seen in run.observed:
        if seen["instance"].kind != "improve":
            assert seen["training_reward"] == pytest.approx(seen["reward"])


def test_validation_improve_prompts_carry_the_trace(run) -> None:
    metrics = {m["step"]: m["data"] for m in run.metrics()}
    assert metrics[0]["exit_val/mean@0"] == 0.0  # session 0 of a base prompt fails
    assert metrics[0]["exit_val/mean@1"] > 0.9  # fixed, because the prompt showed the trace
