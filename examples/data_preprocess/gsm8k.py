"""GSM8K → verl parquet (train.parquet, test.parquet) for `examples/gsm8k_exit_grpo.sh`.

Rows follow verl's RL dataset layout and the math domain's one answer format: the prompt is the
math family's system prompt (final answer in `\\boxed{}`, the system prompt the improve and
diverge prompts carry too) and the question; `reward_model.ground_truth` is the number after
GSM8K's "####" marker, which `exit_verl.verl.math_reward` (math-verify) compares with the
response's last `\\boxed{}`. `data_source` "exit_verl/math/gsm8k" is unknown to verl's built-in
scorers, so a run without the math reward fails instead of scoring another format.
Downloads from the Hugging Face hub on your machine; nothing in the tests calls `main`.

    python examples/data_preprocess/gsm8k.py --out ~/data/gsm8k
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path
from typing import Any

from exit_verl.domains.math import system_prompt

DATA_SOURCE = "exit_verl/math/gsm8k"
FINAL_ANSWER = re.compile(r"####\s*(-?[0-9.,]+)")


def final_answer(solution: str) -> str:
    """The number after GSM8K's "####" marker, without thousands separators."""
    match = FINAL_ANSWER.search(solution)
    if match is None:
        raise ValueError(f"no '#### <number>' in solution: {solution[-80:]!r}")
    return match.group(1).replace(",", "")


def to_row(example: dict[str, Any], split: str, index: int) -> dict[str, Any]:
    question = example["question"]
    return {
        "data_source": DATA_SOURCE,
        "prompt": [
            {"role": "system", "content": system_prompt()},
            {"role": "user", "content": question},
        ],
        "ability": "math",
        "reward_model": {"style": "rule", "ground_truth": final_answer(example["answer"])},
        "extra_info": {"split": split, "index": index, "question": question},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="~/data/gsm8k", help="output folder")
    parser.add_argument("--hf-name", default="openai/gsm8k", help="dataset on the HF hub")
    args = parser.parse_args()

    import datasets  # only needed here, on the machine that downloads

    out = Path(args.out).expanduser()
    out.mkdir(parents=True, exist_ok=True)
    raw = datasets.load_dataset(args.hf_name, "main")
    for split in ("train", "test"):
        rows = [to_row(ex, split, i) for i, ex in enumerate(raw[split])]
        datasets.Dataset.from_list(rows).to_parquet(str(out / f"{split}.parquet"))
        print(f"{split}: {len(rows)} rows -> {out / f'{split}.parquet'}")


if __name__ == "__main__":
    main()
