"""Competitions in MLE-bench's shape: a description, public files (train.csv with the target,
test.csv without it, sample_submission.csv), hidden test answers, a metric and a fixed
worst/best range.

Built in: small competitions made from data sets that ship inside scikit-learn's wheel (no
download), split deterministically (seed 0, 30% test, stratified for class labels). Their
public files and hidden answers live in memory only; the answers never reach a disk. A
competition's worst value is what a trivial constant submission scores (the metric's
`constant` from the training targets), its best is the metric's ideal value.

A folder holds a competition of the same shape (docs/mle.md, "Your own competitions"):

    <name>/task.json            {"metric": "accuracy"} and optionally "worst", "best",
                                "id_column", "target_column", "answers", "description", "title"
    <name>/description.md       what the policy reads (default; or public/description.md)
    <name>/public/              what the solution sees in its working directory
    <name>/private/answers.csv  hidden answers: id_column, target_column (default path)
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cache, lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from exit_verl.domains.mle.grading import Answers, predictions, read_csv_file, read_csv_text, score
from exit_verl.domains.mle.metrics import Metric, get_metric, normalize

SEED = 0
TEST_FRACTION = 0.3
TASK_FILE = "task.json"
TASK_KEYS = {
    "metric",
    "worst",
    "best",
    "id_column",
    "target_column",
    "answers",
    "description",
    "title",
}
MAX_ANSWERS_BYTES = 256 << 20


@dataclass(frozen=True, eq=False)
class Task:
    """One competition. `public` maps each working-directory entry to its bytes or host path;
    the hidden answers are not part of the repr and are only read by `grade`."""

    name: str
    title: str
    description: str
    metric: str
    worst: float
    best: float
    public: Mapping[str, bytes | Path]
    answers: Answers = field(repr=False)
    id_column: str = "id"
    target_column: str = "target"
    columns: str = ""  # a one-line summary of train.csv's columns, for the prompt
    rows: tuple[int, int] | None = None  # (train rows, test rows) when known
    folder: Path | None = None  # None for a built-in competition
    private: tuple[Path, ...] = ()  # host paths that must never be visible in the sandbox

    def __post_init__(self) -> None:
        get_metric(self.metric)
        normalize(self.best, self.worst, self.best)  # worst and best finite and distinct

    @property
    def ref(self) -> str:
        """What `get_task` takes back: the name of a built-in, else the folder path."""
        return self.name if self.folder is None else str(self.folder)

    def normalize(self, raw: float) -> float:
        return normalize(raw, self.worst, self.best)

    def grade_bytes(self, submission: bytes, max_bytes: int) -> float:
        """The metric of a submission's CSV bytes; `SubmissionError` if it cannot be scored."""
        metric = get_metric(self.metric)
        frame = read_csv_text(submission, "submission.csv", max_bytes)
        predicted = predictions(
            frame, self.answers, self.id_column, self.target_column, metric.kind
        )
        return score(metric, self.answers, predicted)

    def prompt(self, timeout_s: float = 60) -> str:
        """The task as the policy reads it: description, evaluation, files, instructions."""
        metric = get_metric(self.metric)
        better = "higher" if metric.higher_is_better else "lower"
        i, t = self.id_column, self.target_column
        if self.rows is not None:
            files = (
                f"- train.csv: {self.rows[0]} rows; columns {self.columns}\n"
                f"- test.csv: {self.rows[1]} rows; the same columns without {t}\n"
                f"- sample_submission.csv: columns {i}, {t}"
            )
        else:
            files = "\n".join(f"- {name}" for name in sorted(self.public))
        return (
            f"# {self.title}\n\n{self.description.strip()}\n\n"
            f"Evaluation: {self.metric} of the {t} column on hidden test labels "
            f"({better} is better).\n\n"
            f"Files in the working directory:\n{files}\n\n"
            f"Write one complete Python script that trains a model on train.csv, predicts {t} "
            f"for every row of test.csv and writes submission.csv (columns {i}, {t}) to the "
            f"working directory. Python 3 with numpy, pandas and scikit-learn; no internet; at "
            f"most {timeout_s:g} seconds. Reply with the script in one ```python code block."
        )


# -- built-in competitions ------------------------------------------------------------------


@dataclass(frozen=True)
class _Spec:
    title: str
    metric: str
    load: Callable[[], tuple[Any, np.ndarray]]  # (feature frame, targets)
    about: str


def _sklearn(loader: str) -> Callable[[], tuple[Any, np.ndarray]]:
    def load():
        from sklearn import datasets

        bunch = getattr(datasets, loader)(as_frame=True)
        return bunch.data, bunch.target.to_numpy()

    return load


def _generated(maker: str, **kwargs: Any) -> Callable[[], tuple[Any, np.ndarray]]:
    def load():
        import pandas as pd
        from sklearn import datasets

        x, y = getattr(datasets, maker)(random_state=SEED, **kwargs)
        return pd.DataFrame(x, columns=[f"x{j}" for j in range(x.shape[1])]), y

    return load


BUILTIN: dict[str, _Spec] = {
    "iris": _Spec(
        "Iris species",
        "accuracy",
        _sklearn("load_iris"),
        "Predict the species of an iris flower (0 setosa, 1 versicolor, 2 virginica) from the "
        "length and width of its sepals and petals in centimetres.",
    ),
    "wine": _Spec(
        "Wine cultivars",
        "accuracy",
        _sklearn("load_wine"),
        "Predict which of three cultivars (0, 1, 2) a wine from one region of Italy comes "
        "from, given 13 results of its chemical analysis.",
    ),
    "breast_cancer": _Spec(
        "Breast cancer diagnosis",
        "roc_auc",
        _sklearn("load_breast_cancer"),
        "Predict whether a breast mass is benign (target 1) or malignant (target 0) from 30 "
        "features of its cell nuclei computed from a digitized image. Submit a score for "
        "target 1, e.g. a probability: the metric ranks the scores.",
    ),
    "digits": _Spec(
        "Handwritten digits",
        "accuracy",
        _sklearn("load_digits"),
        "Predict the digit (0 to 9) shown in an 8x8 image of a handwritten digit; each "
        "feature is one pixel's grey level from 0 to 16.",
    ),
    "diabetes": _Spec(
        "Diabetes progression",
        "rmse",
        _sklearn("load_diabetes"),
        "Predict a quantitative measure of diabetes progression one year after baseline "
        "from age, sex, body mass index, average blood pressure and six blood serum "
        "measurements (all features are centred and scaled).",
    ),
    "friedman": _Spec(
        "Friedman regression",
        "rmse",
        _generated("make_friedman1", n_samples=600, n_features=8, noise=1.0),
        "Predict a real target from 8 features drawn uniformly from [0, 1]; the target is a "
        "non-linear function of five of them plus noise, the other three are irrelevant.",
    ),
    "blobs": _Spec(
        "Noisy classes",
        "accuracy",
        _generated(
            "make_classification",
            n_samples=1000,
            n_features=12,
            n_informative=5,
            n_redundant=2,
            n_classes=3,
            flip_y=0.05,
            class_sep=0.8,
        ),
        "Predict one of three classes (0, 1, 2) from 12 numeric features; five carry the "
        "signal, two are combinations of those, the rest are noise, and 5% of the labels "
        "are flipped at random.",
    ),
}


def _column_name(name: str) -> str:
    return re.sub(r"[^0-9a-zA-Z]+", "_", str(name)).strip("_").lower()


def _columns_summary(features: list[str], id_column: str, target_column: str) -> str:
    shown = (
        ", ".join(features)
        if len(features) <= 8
        else (f"{len(features)} features ({', '.join(features[:3])}, ..., {features[-1]})")
    )
    return f"{id_column}, {shown}, {target_column}"


def _csv(frame) -> bytes:
    buffer = io.StringIO()
    frame.to_csv(buffer, index=False)
    return buffer.getvalue().encode()


@cache
def builtin_task(name: str) -> Task:
    """A built-in competition by name (built once per process)."""
    if name not in BUILTIN:
        raise ValueError(f"unknown built-in competition {name!r}; known: {sorted(BUILTIN)}")
    import pandas as pd
    from sklearn.model_selection import train_test_split

    spec = BUILTIN[name]
    metric = get_metric(spec.metric)
    data, y = spec.load()
    data = data.rename(columns=_column_name).reset_index(drop=True)
    n = len(data)
    ids = np.random.default_rng(SEED).permutation(n)  # row order and ids carry no signal
    stratify = y if metric.kind == "label" else None
    train, test = train_test_split(
        np.arange(n), test_size=TEST_FRACTION, random_state=SEED, stratify=stratify
    )
    train, test = train[np.argsort(ids[train])], test[np.argsort(ids[test])]
    train_frame = pd.concat(
        [pd.DataFrame({"id": ids[train]}), data.iloc[train].reset_index(drop=True)], axis=1
    )
    train_frame["target"] = y[train]
    test_frame = pd.concat(
        [pd.DataFrame({"id": ids[test]}), data.iloc[test].reset_index(drop=True)], axis=1
    )
    constant = metric.constant(y[train])
    sample = pd.DataFrame({"id": ids[test], "target": constant})
    answers = Answers(tuple(str(i) for i in ids[test]), np.asarray(y[test]))
    worst = score(metric, answers, np.full(len(test), float(constant)))
    return Task(
        name=name,
        title=spec.title,
        description=spec.about,
        metric=spec.metric,
        worst=worst,
        best=metric.ideal,
        public={
            "train.csv": _csv(train_frame),
            "test.csv": _csv(test_frame),
            "sample_submission.csv": _csv(sample),
        },
        answers=answers,
        columns=_columns_summary(list(data.columns), "id", "target"),
        rows=(len(train), len(test)),
    )


# -- competitions in folders ----------------------------------------------------------------


def load_task(folder: str | Path) -> Task:
    """A competition from a folder of the shape in the module docstring; ValueError if not."""
    folder = Path(folder).expanduser().resolve()
    spec_path = folder / TASK_FILE
    if not spec_path.is_file():
        raise ValueError(f"{folder} holds no {TASK_FILE}")
    try:
        spec = json.loads(spec_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"{spec_path}: not JSON: {e}") from None
    if not isinstance(spec, dict) or "metric" not in spec:
        raise ValueError(f"{spec_path}: a JSON object with at least a 'metric' is needed")
    unknown = sorted(set(spec) - TASK_KEYS)
    if unknown:
        raise ValueError(f"{spec_path}: unknown keys {unknown}; known: {sorted(TASK_KEYS)}")
    metric = get_metric(str(spec["metric"]))
    id_column = str(spec.get("id_column", "id"))
    target_column = str(spec.get("target_column", "target"))
    public_dir = folder / "public"
    if not public_dir.is_dir():
        raise ValueError(f"{folder} has no public/ folder")
    answers_path = (folder / spec.get("answers", "private/answers.csv")).resolve()
    answers = _read_answers(answers_path, id_column, target_column, metric)
    description = _description(folder, spec)
    worst = spec.get("worst")
    if worst is None:
        worst = _constant_score(public_dir / "train.csv", answers, target_column, metric)
    public = {entry.name: entry for entry in sorted(public_dir.iterdir())}
    return Task(
        name=folder.name,
        title=str(spec.get("title", folder.name)),
        description=description,
        metric=metric.name,
        worst=float(worst),
        best=float(spec.get("best", metric.ideal)),
        public=public,
        answers=answers,
        id_column=id_column,
        target_column=target_column,
        columns=_header(public_dir / "train.csv"),
        folder=folder,
        private=(answers_path, answers_path.parent),
    )


def _description(folder: Path, spec: dict) -> str:
    candidates = [spec["description"]] if "description" in spec else []
    candidates += ["description.md", "public/description.md"]
    for name in candidates:
        path = folder / name
        if path.is_file():
            return path.read_text(errors="replace")
    raise ValueError(f"{folder}: no description.md (or public/description.md)")


def _read_answers(path: Path, id_column: str, target_column: str, metric: Metric) -> Answers:
    if not path.is_file():
        raise ValueError(f"hidden answers not found: {path}")
    frame = read_csv_file(path, MAX_ANSWERS_BYTES)
    missing = [c for c in (id_column, target_column) if c not in frame.columns]
    if missing:
        raise ValueError(f"{path} lacks column(s) {missing}")
    targets = np.array([v.strip() for v in frame[target_column]], dtype=object)
    numbers = _as_floats(targets)
    if metric.kind == "number" and numbers is None:
        raise ValueError(f"{path}: {metric.name} needs numeric targets")
    return Answers(
        tuple(v.strip() for v in frame[id_column]), numbers if numbers is not None else targets
    )


def _constant_score(train: Path, answers: Answers, target_column: str, metric: Metric) -> float:
    if not train.is_file():
        raise ValueError("no public/train.csv to derive the constant submission: set 'worst'")
    frame = read_csv_file(train, MAX_ANSWERS_BYTES)
    if target_column not in frame.columns:
        raise ValueError(f"{train} has no {target_column!r} column: set 'worst' in task.json")
    values = np.array([v.strip() for v in frame[target_column]], dtype=object)
    numbers = _as_floats(values)
    constant = metric.constant(numbers if numbers is not None else values)
    predicted = np.full(len(answers.ids), constant, dtype=object)
    floats = _as_floats(predicted.astype(str))
    return score(metric, answers, floats if floats is not None else predicted)


def _as_floats(values: np.ndarray) -> np.ndarray | None:
    try:
        out = np.array([float(v) for v in values], dtype=np.float64)
    except ValueError:
        return None
    return out if np.isfinite(out).all() else None


def _header(train: Path) -> str:
    if not train.is_file():
        return ""
    with train.open(errors="replace") as f:
        return f.readline(4096).strip()


# -- lookup ---------------------------------------------------------------------------------


def tasks(root: str | Path | None = None) -> list[Task]:
    """The built-in competitions, or every competition folder under `root` (and `root`
    itself if it holds a task.json), sorted by name."""
    if root is None:
        return [builtin_task(name) for name in sorted(BUILTIN)]
    root = Path(root).expanduser()
    folders = [root] if (root / TASK_FILE).is_file() else []
    if root.is_dir():
        folders += sorted(p for p in root.iterdir() if (p / TASK_FILE).is_file())
    if not folders:
        raise ValueError(f"no competition folder (with {TASK_FILE}) in {root}")
    return [load_task(p) for p in folders]


def get_task(ref: str) -> Task:
    """A competition by `Task.ref`: a built-in name or a competition folder."""
    if ref in BUILTIN:
        return builtin_task(ref)
    return _folder_task(str(Path(ref).expanduser().resolve()))


@lru_cache(maxsize=64)
def _folder_task(path: str) -> Task:
    return load_task(path)
