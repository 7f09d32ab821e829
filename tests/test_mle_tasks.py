"""The ML-engineering domain without the sandbox: competitions, metrics, grading, folders,
code extraction, the verl reward function's helpers."""

from __future__ import annotations

import io
import json
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from deps import need

from exit_verl.domains import mle
from exit_verl.domains.mle.grading import Answers, SubmissionError
from exit_verl.domains.mle.tasks import builtin_task

need("sklearn")


def test_builtin_competitions_have_the_contract_shape() -> None:
    import pandas as pd

    tasks = mle.tasks()
    assert [t.name for t in tasks] == sorted(mle.BUILTIN) and len(tasks) >= 5
    for task in tasks:
        assert task.ref == task.name and mle.get_task(task.ref) is task
        train, test, sample = (
            pd.read_csv(io.BytesIO(task.public[name]))
            for name in ("train.csv", "test.csv", "sample_submission.csv")
        )
        assert list(train.columns) == ["id", *test.columns[1:], "target"]
        assert list(test.columns)[0] == "id" and "target" not in test.columns
        assert list(sample.columns) == ["id", "target"]
        assert set(train["id"]).isdisjoint(test["id"])
        assert [str(i) for i in test["id"]] == list(task.answers.ids)
        assert task.rows == (len(train), len(test))
        assert 0.25 < len(test) / (len(train) + len(test)) < 0.35
        assert "answers" not in repr(task)  # the hidden labels stay out of reprs and logs
        prompt = task.prompt(45)
        assert task.title in prompt and "submission.csv" in prompt and "45 seconds" in prompt


def test_split_and_worst_value_are_deterministic() -> None:
    task = mle.get_task("wine")
    builtin_task.cache_clear()
    again = mle.get_task("wine")
    assert again is not task
    assert again.public == task.public and again.answers.ids == task.answers.ids
    assert again.worst == task.worst
    # worst = the majority class of the training targets, scored on the hidden test labels
    majority = np.bincount(task.answers.targets).argmax()
    assert task.worst == pytest.approx(np.mean(task.answers.targets == majority), abs=0.1)


@pytest.mark.parametrize(
    ("value", "worst", "best", "expected"),
    [
        (0.5, 0.5, 1.0, 0.0),
        (0.75, 0.5, 1.0, 0.5),
        (1.0, 0.5, 1.0, 1.0),
        (0.2, 0.5, 1.0, 0.0),
        (40.0, 80.0, 0.0, 0.5),
        (100.0, 80.0, 0.0, 0.0),
        (-1.0, 80.0, 0.0, 1.0),
    ],
)
def test_normalize_to_the_fixed_range(value, worst, best, expected) -> None:
    assert mle.normalize(value, worst, best) == pytest.approx(expected)


def test_normalize_rejects_an_empty_range() -> None:
    with pytest.raises(ValueError):
        mle.normalize(1.0, 2.0, 2.0)


def test_grading_reads_labels_numbers_and_rejects_bad_submissions() -> None:
    task = mle.get_task("iris")
    ids = task.answers.ids
    truth = task.answers.targets

    def csv(rows: list[tuple]) -> bytes:
        return ("id,target\n" + "".join(f"{a},{b}\n" for a, b in rows)).encode()

    perfect = list(zip(ids, truth, strict=True))
    assert task.grade_bytes(csv(perfect), 1 << 20) == 1.0
    as_floats = [(i, f"{t}.0") for i, t in perfect][::-1]  # order and "1.0" for 1 do not matter
    assert task.grade_bytes(csv(as_floats), 1 << 20) == 1.0
    for rows, message in [
        (perfect[:-1], "lacks 1 of the"),
        (perfect + [("999999", 1)], "not in test.csv"),
        (perfect + perfect[:1], "repeats some ids"),
        ([(i, "") for i in ids], "no target"),
    ]:
        with pytest.raises(SubmissionError, match=message):
            task.grade_bytes(csv(rows), 1 << 20)
    with pytest.raises(SubmissionError, match="lacks column"):
        task.grade_bytes(b"identifier,label\n1,2\n", 1 << 20)
    with pytest.raises(SubmissionError, match="larger than"):
        task.grade_bytes(csv(perfect), 10)
    regression = mle.get_task("diabetes")
    with pytest.raises(SubmissionError, match="finite numbers"):
        regression.grade_bytes(csv([(i, "nan") for i in regression.answers.ids]), 1 << 20)


def test_answers_must_be_consistent() -> None:
    with pytest.raises(ValueError):
        Answers(("1", "1"), np.array([0, 1]))
    with pytest.raises(ValueError):
        Answers(("1",), np.array([0, 1]))


def _folder(tmp_path: Path, spec: dict, answers: str = "id,target\na,yes\nb,no\nc,yes\n") -> Path:
    folder = tmp_path / "comp"
    (folder / "public").mkdir(parents=True)
    (folder / "private").mkdir()
    (folder / "public" / "train.csv").write_text("id,x,target\nd,1,yes\ne,2,yes\nf,3,no\n")
    (folder / "public" / "test.csv").write_text("id,x\na,1\nb,3\nc,1\n")
    (folder / "private" / "answers.csv").write_text(answers)
    (folder / "description.md").write_text("Say yes or no.")
    (folder / "task.json").write_text(json.dumps(spec))
    return folder


def test_folder_competition_with_text_labels(tmp_path: Path) -> None:
    folder = _folder(tmp_path, {"metric": "accuracy", "title": "Yes or no"})
    task = mle.load_task(folder)
    assert task.ref == str(folder.resolve()) and mle.get_task(task.ref).name == "comp"
    assert task.worst == pytest.approx(2 / 3)  # the constant "yes" from train.csv
    assert task.private[0] == (folder / "private" / "answers.csv").resolve()
    assert set(task.public) == {"train.csv", "test.csv"}
    assert task.grade_bytes(b"id,target\na,yes\nb,no\nc,no\n", 1000) == pytest.approx(2 / 3)
    assert task.normalize(1.0) == 1.0
    assert "Say yes or no." in task.prompt() and "- train.csv" in task.prompt()
    assert [t.name for t in mle.tasks(tmp_path)] == ["comp"]


def test_folder_competition_settings_are_checked(tmp_path: Path) -> None:
    folder = _folder(tmp_path, {"metric": "accuracy", "worst": 0.5, "color": "red"})
    with pytest.raises(ValueError, match="unknown keys"):
        mle.load_task(folder)
    (folder / "task.json").write_text(json.dumps({"metric": "f1"}))
    with pytest.raises(ValueError, match="unknown metric"):
        mle.load_task(folder)
    (folder / "task.json").write_text(json.dumps({"metric": "rmse"}))
    with pytest.raises(ValueError, match="needs numeric targets"):
        mle.load_task(folder)
    (folder / "task.json").write_text(json.dumps({"metric": "accuracy", "worst": 1.0}))
    with pytest.raises(ValueError, match="differ"):
        mle.load_task(folder)
    with pytest.raises(ValueError, match="no competition folder"):
        mle.tasks(tmp_path / "comp" / "public")


def test_custom_metric_is_usable_by_name(tmp_path: Path) -> None:
    name = "test_max_error"
    mle.register_metric(
        name, lambda t, p: float(np.max(np.abs(t - p))), higher_is_better=False, ideal=0.0
    )
    try:
        folder = _folder(tmp_path, {"metric": name}, "id,target\na,1\nb,2\nc,3\n")
        (folder / "public" / "train.csv").write_text("id,x,target\nd,1,2\ne,2,2\n")
        task = mle.load_task(folder)
        assert task.worst == pytest.approx(1.0)  # constant 2 (the mean) vs 1, 2, 3
        assert task.grade_bytes(b"id,target\na,1\nb,2.5\nc,3\n", 1000) == pytest.approx(0.5)
    finally:
        mle.METRICS.pop(name)


@pytest.mark.parametrize(
    ("response", "code"),
    [
        ("Here:\n```python\nprint(1)\n```\nThen ```python\nprint(2)\n```", "print(2)\n"),
        ("```py\nx = 1\n```", "x = 1\n"),
        ("```\nplain fence\n```", "plain fence\n"),
        ("Sure!\n```python\nimport os\nos.getcwd(", "import os\nos.getcwd("),  # cut off
        ("print('no fence')", "print('no fence')"),
    ],
)
def test_extract_code(response: str, code: str) -> None:
    assert mle.extract_code(response) == code


def test_run_slots_bound_concurrency(tmp_path: Path) -> None:
    from exit_verl.verl.mle_reward import run_slot

    active, peak, lock = [0], [0], threading.Lock()

    def work() -> None:
        with run_slot(2, tmp_path):
            with lock:
                active[0] += 1
                peak[0] = max(peak[0], active[0])
            time.sleep(0.05)
            with lock:
                active[0] -= 1

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert peak[0] == 2
    with pytest.raises(ValueError):
        with run_slot(0, tmp_path):
            pass


def test_feedback_keeps_the_end_of_the_trace() -> None:
    from exit_verl.verl.mle_reward import feedback_text

    assert feedback_text(None, 10) is None
    assert feedback_text("short", 10) == "short"
    trace = "Traceback\n" + "x" * 100 + "\nValueError: the cause"
    kept = feedback_text(trace, 30)
    assert kept.endswith("ValueError: the cause") and kept.startswith("[...]")
