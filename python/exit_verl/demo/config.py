"""Settings of the CPU main job; defaults finish `exit-verl demo` in about 30 min on 2 cores."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from exit_verl.config import ExItConfig, reject_unknown_keys


def default_exit() -> ExItConfig:
    # Small archive and gate so replays start after the first step of a short run; depth is
    # capped at 3 so evaluation (4 improvement steps) goes beyond what training saw.
    return ExItConfig(
        min_archive_size=8,
        capacity=512,
        diversity_bonus="centroid",
        max_depth=3,
    )


@dataclass
class DemoConfig:
    steps: int = 30
    prompts_per_step: int = 4
    group_size: int = 4
    max_new_tokens: int = 64
    temperature: float = 1.0
    learning_rate: float = 2e-4
    lora_rank: int = 16
    lora_alpha: int = 32
    clip_ratio: float = 0.2
    kl_coef: float = 0.0
    kl_type: str = "low_var_kl"
    train_tasks: int = 256
    task_steps: int = 2
    eval_tasks: int = 16
    eval_iterations: int = 4
    eval_max_new_tokens: int = 64
    threads: int = 2
    seed: int = 0
    exit: ExItConfig = field(default_factory=default_exit)

    def validate(self) -> None:
        for name in ("steps", "prompts_per_step", "group_size", "max_new_tokens", "train_tasks"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.group_size < 2:
            raise ValueError("group_size must be >= 2: GRPO compares responses within a group")
        if self.eval_tasks < 1 or self.eval_iterations < 0:
            raise ValueError("eval_tasks must be >= 1 and eval_iterations >= 0")
        if self.threads < 1:
            raise ValueError(f"threads must be >= 1, got {self.threads}")
        if not self.learning_rate > 0:
            raise ValueError("learning_rate must be > 0")
        self.exit.validate()

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> DemoConfig:
        reject_unknown_keys(cls, values, "demo config")
        values = dict(values)
        exit_values = values.pop("exit", None)
        base = default_exit().to_dict()
        if exit_values:
            base.update(exit_values)
        cfg = cls(**values, exit=ExItConfig.from_dict(base))
        cfg.validate()
        return cfg

    @classmethod
    def from_yaml(cls, path: str | Path) -> DemoConfig:
        import yaml

        data = yaml.safe_load(Path(path).read_text()) or {}
        if not isinstance(data, dict):
            raise ValueError(f"{path}: expected a mapping of settings")
        return cls.from_dict(data)

    def to_yaml(self, path: str | Path) -> None:
        import yaml

        Path(path).write_text(yaml.safe_dump(self.to_dict(), sort_keys=False))
