"""What the ML-engineering sandbox costs per run: the same scripts through `mle.run` (bwrap,
limits, staging, grading) and as a plain `python solution.py` in a folder with the same files
(the anchor, measured in the same run), median of N runs each, interleaved.

    python benches/mle_sandbox_bench.py [--runs 10] [--task iris]

Scripts: copying the sample submission (start-up only), the iris rule with the csv module,
and a random forest with pandas and scikit-learn (the import dominates).
"""

from __future__ import annotations

import argparse
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parents[1] / "tests"))
import mle_scripts as scripts  # noqa: E402

from exit_verl.domains import mle  # noqa: E402


def plain(task: mle.Task, code: str) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        for name, content in task.public.items():
            Path(tmp, name).write_bytes(content)
        Path(tmp, "solution.py").write_text(code)
        start = time.perf_counter()
        subprocess.run([sys.executable, "solution.py"], cwd=tmp, check=True, capture_output=True)
        return time.perf_counter() - start


def sandboxed(task: mle.Task, code: str) -> tuple[float, float]:
    start = time.perf_counter()
    result = mle.run(task, code, timeout_s=120)
    return time.perf_counter() - start, result.seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--task", default="iris")
    args = parser.parse_args()
    problem = mle.sandbox_problem()
    if problem is not None:
        raise SystemExit(f"no sandbox: {problem}")
    task = mle.get_task(args.task)
    codes = {
        "copy the sample": "import shutil\nshutil.copy('sample_submission.csv', 'submission.csv')",
        "iris rule (csv)": scripts.IRIS_RULE,
        "random forest": scripts.SENSIBLE.format(metric=task.metric),
    }
    when = time.strftime("%Y-%m-%d %H:%M")
    print(f"# {when} {platform.machine()} Python {platform.python_version()}, bwrap")
    print(f"# task {task.name}, median of {args.runs} runs")
    print("| script | plain python | mle.run (total) | of which the script | overhead | ratio |")
    print("|---|---|---|---|---|---|")
    for name, code in codes.items():
        anchor, total, inner = [], [], []
        for _ in range(args.runs):
            anchor.append(plain(task, code))
            t, s = sandboxed(task, code)
            total.append(t)
            inner.append(s)
        a, t, s = (statistics.median(x) for x in (anchor, total, inner))
        print(
            f"| {name} | {a * 1000:.0f} ms | {t * 1000:.0f} ms | {s * 1000:.0f} ms "
            f"| {(t - a) * 1000:+.0f} ms | {t / a:.2f}x |"
        )


if __name__ == "__main__":
    main()
