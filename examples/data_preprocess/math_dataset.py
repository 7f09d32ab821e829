"""MATH (Hendrycks et al.) → verl parquet (train.parquet, test.parquet).

`data_source` "DigitalLearningGmbH/MATH-lighteval" selects verl's MATH scorer, which compares
the last `\\boxed{...}` of a response with `reward_model.ground_truth` (the boxed answer of the
reference solution). Downloads from the Hugging Face hub on your machine; nothing in the tests
calls this.

    python examples/data_preprocess/math_dataset.py --out ~/data/math
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

DATA_SOURCE = "DigitalLearningGmbH/MATH-lighteval"
INSTRUCTION = "Let's think step by step and output the final answer within \\boxed{}."
BOXED = "\\boxed{"


def last_boxed(solution: str) -> str:
    """Contents of the last `\\boxed{...}` in `solution` (braces balanced)."""
    start = solution.rfind(BOXED)
    if start < 0:
        raise ValueError(f"no \\boxed{{}} in solution: {solution[-80:]!r}")
    depth, i = 1, start + len(BOXED)
    for j in range(i, len(solution)):
        if solution[j] == "{":
            depth += 1
        elif solution[j] == "}":
            depth -= 1
            if depth == 0:
                return solution[i:j]
    raise ValueError(f"unbalanced \\boxed{{}} in solution: {solution[start:][:80]!r}")


def to_row(example: dict[str, Any], split: str, index: int) -> dict[str, Any]:
    problem = example["problem"]
    return {
        "data_source": DATA_SOURCE,
        "prompt": [{"role": "user", "content": f"{problem} {INSTRUCTION}"}],
        "ability": "math",
        "reward_model": {"style": "rule", "ground_truth": last_boxed(example["solution"])},
        "extra_info": {
            "split": split,
            "index": index,
            "level": example.get("level"),
            "type": example.get("type"),
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="~/data/math", help="output folder")
    parser.add_argument("--hf-name", default=DATA_SOURCE, help="dataset on the HF hub")
    args = parser.parse_args()

    import datasets  # only needed here, on the machine that downloads

    out = Path(args.out).expanduser()
    out.mkdir(parents=True, exist_ok=True)
    raw = datasets.load_dataset(args.hf_name)
    for split in ("train", "test"):
        rows = [to_row(ex, split, i) for i, ex in enumerate(raw[split])]
        datasets.Dataset.from_list(rows).to_parquet(str(out / f"{split}.parquet"))
        print(f"{split}: {len(rows)} rows -> {out / f'{split}.parquet'}")


if __name__ == "__main__":
    main()
