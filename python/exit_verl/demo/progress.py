"""A tqdm bar per training step, driven by verl's tracker records (parent process side).

Shows step, task reward, archive size, replay fraction and an ETA from verl's own step
times (`timing_s/step`): tqdm's rate would count Ray's start-up and the base model's
evaluation as the first step.
"""

from __future__ import annotations

import sys
from typing import Any

from exit_verl.demo.metrics import TRAINING_KEY

BAR_FORMAT = "{desc}: {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} [{elapsed}{postfix}]"


class StepProgress:
    def __init__(self, total: int, initial: int, desc: str, enabled: bool = True) -> None:
        from tqdm import tqdm

        self.total = total
        self.step_seconds: list[float] = []
        self.bar = tqdm(
            total=total,
            initial=initial,
            desc=desc,
            unit="step",
            bar_format=BAR_FORMAT,
            dynamic_ncols=True,
            disable=not enabled,
            file=sys.stderr,
        )
        self.bar.set_postfix_str("starting Ray and verl", refresh=True)
        # Between records only a terminal gets the running clock: a log file would fill up.
        self.live = enabled and sys.stderr.isatty()

    def tick(self) -> None:
        if self.live:
            self.bar.refresh()

    def on_record(self, record: dict[str, Any]) -> None:
        step, data = int(record["step"]), record["data"]
        if TRAINING_KEY not in data:
            mean = data.get("exit_val/mean@0")
            if mean is not None:
                self.bar.set_postfix_str(f"evaluated step {step}: held-out mean@0 {mean:.3f}")
            return
        if "timing_s/step" in data:
            self.step_seconds.append(float(data["timing_s/step"]))
        self.bar.n = step
        parts = [f"reward {data.get('critic/score/mean', float('nan')):.3f}"]
        if "exit/archive_size" in data:
            parts.append(f"archive {int(data['exit/archive_size'])}")
        if "exit/replay_fraction" in data:
            parts.append(f"replay {data['exit/replay_fraction']:.2f}")
        remaining = self.total - step
        if remaining > 0 and self.step_seconds:
            recent = self.step_seconds[-3:]
            eta = remaining * sum(recent) / len(recent)
            parts.append(f"ETA {_clock(eta)} + eval")
        self.bar.set_postfix_str(", ".join(parts), refresh=False)
        self.bar.refresh()

    def close(self) -> None:
        self.bar.close()


def _clock(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes}:{secs:02d}"
