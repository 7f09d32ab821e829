"""Solution scripts for the ML-engineering tests: sensible, trivial, hostile."""

from __future__ import annotations

import os
import time
from pathlib import Path

# A random-forest solution for any built-in metric (labels, scores or values).
SENSIBLE = """
import pandas as pd
from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor

train, test = pd.read_csv("train.csv"), pd.read_csv("test.csv")
features = [c for c in train.columns if c not in ("id", "target")]
if "{metric}" in ("accuracy", "roc_auc"):
    model = RandomForestClassifier(n_estimators=60, random_state=0)
    model.fit(train[features], train["target"])
    if "{metric}" == "roc_auc":
        predicted = model.predict_proba(test[features])[:, 1]
    else:
        predicted = model.predict(test[features])
else:
    model = RandomForestRegressor(n_estimators=60, random_state=0)
    predicted = model.fit(train[features], train["target"]).predict(test[features])
pd.DataFrame({{"id": test["id"], "target": predicted}}).to_csv("submission.csv", index=False)
print("done")
"""

# The constant submission the competition's worst value is defined by.
CONSTANT = "import shutil\nshutil.copy('sample_submission.csv', 'submission.csv')\n"

# Iris by a hand rule on the petals, with the csv module only (starts fast).
IRIS_RULE = """
import csv
with open("test.csv") as f, open("submission.csv", "w", newline="") as out:
    writer = csv.writer(out)
    writer.writerow(["id", "target"])
    for row in csv.DictReader(f):
        length, width = float(row["petal_length_cm"]), float(row["petal_width_cm"])
        writer.writerow([row["id"], 0 if length < 2.5 else 1 if width < 1.75 else 2])
"""


def marker() -> str:
    """A number no other process's command line holds (used as `sleep` seconds)."""
    return f"{os.getpid() % 9000 + 1000}.{time.monotonic_ns() % 10**9:09d}"


def processes_with(text: str) -> list[int]:
    """Host processes whose command line contains `text`."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and entry.name != str(os.getpid()):
            try:
                if text.encode() in (entry / "cmdline").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def wait_gone(text: str, seconds: float = 5.0) -> list[int]:
    """Processes still holding `text` after up to `seconds` (the kernel reaps asynchronously)."""
    deadline = time.monotonic() + seconds
    while True:
        left = processes_with(text)
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.05)
