"""The paper's math setting → verl parquet files for `examples/math_exit_grpo.sh`.

Training: 1280 problems (the paper's count) drawn with a fixed seed from the MATH training split
(Hendrycks et al.); which 1280 problems the paper trained on is not identified in
shared/PAPER.md, so this draw is ours (`--seed`, `--levels`). Held-out test sets, as the paper
names them: MATH500, AMC12 2022/23, AIME 2024 and 2025, Minerva math, OlympiadBench (the
text-only, open-ended English math competition subset). Outputs in `--out`:

    train.parquet                  the training problems
    test_<name>.parquet            one file per test set (see TEST_SETS)
    test.parquet                   every test set in one file

One answer format end to end: every row's prompt is the math family's system prompt (final
answer in `\\boxed{}`, `exit_verl.domains.math.system_prompt()`, the same system prompt the
improve and diverge prompts carry) and the problem; `reward_model.ground_truth` is the bare
reference answer that `exit_verl.verl.math_reward` (math-verify) compares with the response's
last `\\boxed{}`. `data_source` is `exit_verl/math/<set>`, a name verl's built-in scorers do not
know, so a run without `reward.custom_reward_function.path=pkg://exit_verl.verl.math_reward`
fails instead of silently scoring with another format.

Downloads from the Hugging Face hub on your machine; nothing in the tests calls `main`.

    python examples/data_preprocess/math_paper.py --out ~/data/exit_math
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from exit_verl.domains.math import last_boxed, system_prompt

TRAIN_PROBLEMS = 1280
DATA_SOURCE_PREFIX = "exit_verl/math/"


@dataclass(frozen=True)
class Source:
    """A data set on the Hugging Face hub and the fields holding problem and answer."""

    hub: str
    split: str
    problem: str
    answer: str  # a field with the bare answer, or "solution" (answer = its last \boxed{})
    config: str | None = None


TRAIN_SET = Source("DigitalLearningGmbH/MATH-lighteval", "train", "problem", "solution")
TEST_SETS: dict[str, Source] = {
    "math500": Source("HuggingFaceH4/MATH-500", "test", "problem", "answer"),
    "amc": Source("AI-MO/aimo-validation-amc", "train", "problem", "answer"),
    "aime24": Source("HuggingFaceH4/aime_2024", "train", "problem", "answer"),
    "aime25": Source("MathArena/aime_2025", "train", "problem", "answer"),
    "minerva": Source("math-ai/minervamath", "test", "question", "answer"),
    "olympiadbench": Source(
        "Hothan/OlympiadBench", "train", "question", "final_answer", config="OE_TO_maths_en_COMP"
    ),
}


def answer_text(value: Any) -> str:
    """A reference answer as the bare text the scorer compares: one-element lists unwrapped,
    integral floats without ".0", surrounding `$` removed."""
    if isinstance(value, (list, tuple)) or type(value).__name__ == "ndarray":
        items = list(value)
        if len(items) != 1:
            raise ValueError(f"expected one reference answer, got {items!r}")
        value = items[0]
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    text = str(value).strip().strip("$").strip()
    if not text:
        raise ValueError("empty reference answer")
    return text


def reference_answer(example: Mapping[str, Any], source: Source) -> str:
    if source.answer not in example:
        raise KeyError(f"{source.hub} has no field {source.answer!r}; fields: {sorted(example)}")
    if source.answer == "solution":
        boxed = last_boxed(str(example["solution"]))
        if boxed is None:
            raise ValueError(f"no \\boxed{{}} answer in solution: {example['solution'][-80:]!r}")
        return answer_text(boxed)
    return answer_text(example[source.answer])


def to_row(example: Mapping[str, Any], source: Source, name: str, index: int) -> dict[str, Any]:
    if source.problem not in example:
        raise KeyError(f"{source.hub} has no field {source.problem!r}; fields: {sorted(example)}")
    problem = str(example[source.problem]).strip()
    return {
        "data_source": DATA_SOURCE_PREFIX + name,
        "prompt": [
            {"role": "system", "content": system_prompt()},
            {"role": "user", "content": problem},
        ],
        "ability": "math",
        "reward_model": {"style": "rule", "ground_truth": reference_answer(example, source)},
        "extra_info": {"split": name, "index": index, "source": source.hub},
    }


def train_rows(examples: list[Mapping[str, Any]], n: int, seed: int, levels: set[str] | None):
    """`n` rows drawn without replacement with `seed` from `examples` (of the given MATH
    levels, e.g. {"Level 3", "Level 4"}; None: all); problems without a boxed answer skipped."""
    import random

    pool = [e for e in examples if levels is None or e.get("level") in levels]
    rng = random.Random(seed)
    rng.shuffle(pool)
    rows = []
    for example in pool:
        try:
            rows.append(to_row(example, TRAIN_SET, "train", len(rows)))
        except ValueError:
            continue
        if len(rows) == n:
            return rows
    raise ValueError(f"only {len(rows)} usable training problems, {n} wanted")


def _load(source: Source) -> list[dict[str, Any]]:
    import datasets  # only needed here, on the machine that downloads

    data = datasets.load_dataset(source.hub, source.config, split=source.split)
    return [dict(example) for example in data]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="~/data/exit_math", help="output folder")
    parser.add_argument("--train-problems", type=int, default=TRAIN_PROBLEMS)
    parser.add_argument("--seed", type=int, default=0, help="seed of the training draw")
    parser.add_argument("--levels", default="", help='MATH levels to draw from, e.g. "3,4,5"')
    args = parser.parse_args()

    import pandas as pd

    out = Path(args.out).expanduser()
    out.mkdir(parents=True, exist_ok=True)
    levels = {f"Level {x.strip()}" for x in args.levels.split(",") if x.strip()} or None
    rows = train_rows(_load(TRAIN_SET), args.train_problems, args.seed, levels)
    pd.DataFrame(rows).to_parquet(out / "train.parquet")
    print(f"train: {len(rows)} rows -> {out / 'train.parquet'}")
    every = []
    for name, source in TEST_SETS.items():
        rows, skipped = [], 0
        for example in _load(source):
            try:
                rows.append(to_row(example, source, name, len(rows)))
            except ValueError:  # several reference answers (OlympiadBench) or none
                skipped += 1
        pd.DataFrame(rows).to_parquet(out / f"test_{name}.parquet")
        every.extend(rows)
        note = f" ({skipped} without a single reference answer left out)" if skipped else ""
        print(f"{name}: {len(rows)} rows -> {out / f'test_{name}.parquet'}{note}")
    pd.DataFrame(every).to_parquet(out / "test.parquet")
    print(f"all test sets: {len(every)} rows -> {out / 'test.parquet'}")


if __name__ == "__main__":
    main()
