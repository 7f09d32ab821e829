"""BFCL v3 multi-turn entries as verl parquet files for the tool-use agent loop (no download:
the entries ship inside the PyPI package bfcl-eval, `pip install --no-deps bfcl-eval`).

    python examples/data_preprocess/bfcl.py --out ~/data/bfcl

writes train.parquet (the 640 train-split entries of all four categories) and test.parquet
(the 160 held-out ones); the split is exit_verl.domains.bfcl's fixed split by scenario.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from exit_verl.domains import bfcl
from exit_verl.domains.bfcl.rows import FUNCTION_CHOICES, verl_rows


def write(out: Path, categories: list[str], functions: str, overlong_filter: bool) -> dict:
    import pandas as pd

    out.mkdir(parents=True, exist_ok=True)
    counts = {}
    for split, name in (("train", "train.parquet"), ("test", "test.parquet")):
        rows = verl_rows(bfcl.tasks(split, categories), functions, overlong_filter)
        pd.DataFrame(rows).to_parquet(out / name)
        counts[name] = len(rows)
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True)
    parser.add_argument("--categories", default=",".join(bfcl.CATEGORIES))
    parser.add_argument("--functions", default="all", choices=FUNCTION_CHOICES)
    parser.add_argument(
        "--no-overlong-filter", action="store_true", help="train on length-cut episodes too"
    )
    args = parser.parse_args()
    categories = [c for c in args.categories.split(",") if c]
    counts = write(
        Path(args.out).expanduser(), categories, args.functions, not args.no_overlong_filter
    )
    print(counts)


if __name__ == "__main__":
    main()
