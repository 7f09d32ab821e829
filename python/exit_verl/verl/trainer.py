"""`ExItTrainer`: verl's sync v1 trainer with the ExIt curriculum, verl trainer mode "exit".

Importing this module registers the class with verl's `register_trainer`;
`exit_verl.verl.plugin` (the `verl.plugins` entry point) imports it right after verl's v1
trainer package loads. verl's `TaskRunnerV1` then builds it for
`trainer.v1.trainer_mode=exit`. Everything else is verl's `PPOTrainerSync`; the overrides:

- `trainer_mode` reads "sync": verl's base class compares the mode with "sync" to choose the
  replay buffer, the dataloader fetch size, TransferQueue checkpointing and re-issuing of
  in-flight prompts, and ExIt needs sync behaviour at each of them (the prompts of step t are
  drawn after step t − 1 is observed).
- `_build_replay_buffer`: verl's buffer, reporting the groups it drops (`replay_buffer`).
- `_init_dataloader`: after verl builds its datasets, the `ExItController` takes the
  training set as base tasks; `_fetch_one_gen_batch` draws each batch from the curriculum.
- `_compute_advantage`: the step's groups are observed; verl's estimator runs on the
  curriculum's training rewards, `rm_scores` keeps the task rewards (so `critic/score/*`
  shows them, `critic/rewards/*` the training rewards), then the advantages are multiplied
  by the curriculum's advantage scale (the diversity bonus).
- `_save_checkpoint` / `_load_checkpoint`: ExIt state in verl's checkpoint folders, saved and
  restored as one unit with verl's (checkpoint_files).
- `_validate`: adds multi-step self-improvement (`exit_val/`), run through verl's own
  `_validate` (`validation`).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from typing import Any

import transfer_queue as tq
from transfer_queue import KVBatchMeta
from verl.trainer.ppo.v1.trainer_base import register_trainer
from verl.trainer.ppo.v1.trainer_sync import PPOTrainerSync
from verl.utils import tensordict_utils as tu

from exit_verl.verl.checkpoint_files import (
    ExItCheckpointFiles,
    check_resumable,
    max_actor_checkpoints,
)
from exit_verl.verl.controller import ExItController
from exit_verl.verl.mode import TRAINER_MODE
from exit_verl.verl.prompt_budget import PromptBudget
from exit_verl.verl.replay_buffer import ExItReplayBuffer
from exit_verl.verl.rows import (
    FEEDBACK_KEY,
    TURNS_KEY,
    fetch_rows,
    get_field,
    put_field,
    with_outcome,
)
from exit_verl.verl.settings import ExItSettings, exit_settings
from exit_verl.verl.validation import ValidationCapture, multistep_validation

logger = logging.getLogger("exit_verl")

# The mode verl's base class must see for ExIt: verl's sync semantics.
VERL_MODE = "sync"


@register_trainer(TRAINER_MODE)
class ExItTrainer(PPOTrainerSync):
    """verl's sync trainer with ExIt (module docstring); constructed by verl's task runner."""

    exit: ExItController

    def __init__(self, config: Any) -> None:
        # Before verl builds anything: a bad exit.* setting fails first.
        self.exit_settings = exit_settings(config)
        self.exit_files = ExItCheckpointFiles()
        self._capture: ValidationCapture | None = None
        super().__init__(config)

    @property
    def trainer_mode(self) -> str:
        return VERL_MODE

    @trainer_mode.setter
    def trainer_mode(self, value: str) -> None:
        # verl's __init__ assigns config.trainer.v1.trainer_mode here.
        if value != TRAINER_MODE:
            raise ValueError(f"ExItTrainer runs as trainer mode {TRAINER_MODE!r}, got {value!r}")

    # -- prompts ------------------------------------------------------------------------------

    def _build_replay_buffer(self) -> ExItReplayBuffer:
        return ExItReplayBuffer.adopt(super()._build_replay_buffer(), self._observe_dropped)

    def _init_dataloader(self) -> None:
        super()._init_dataloader()
        # Prompts come from the curriculum: a base-task set smaller than one batch (a run
        # from a single task instance) is valid, but verl divides steps by this count.
        self.steps_per_epoch = max(1, self.steps_per_epoch)
        self.exit = build_controller(
            self.config, self.exit_settings, self.train_dataset, self.tokenizer, self.processor
        )

    def _fetch_one_gen_batch(self):
        data = self.config.data
        n = int(data.get("gen_batch_size", None) or data.train_batch_size)
        return tu.get_tensordict(self.exit.next_batch_dict(n, self.global_steps))

    # -- rewards and advantages ---------------------------------------------------------------

    def _observe_dropped(self, partition_id: str, keys: list[str], uids: set[str]) -> None:
        rows = fetch_rows(tq, keys, partition_id, self.tokenizer, uids & set(self.exit.pending))
        self.exit.observe(rows, self.global_steps, trained=False)

    def _compute_advantage(self, batch: KVBatchMeta, metrics: dict) -> KVBatchMeta:
        part = batch.partition_id
        real = [
            k for k, tag in zip(batch.keys, batch.tags, strict=True) if not tag.get("is_padding")
        ]
        rows = fetch_rows(tq, real, part, self.tokenizer, set(self.exit.pending))
        signal = self.exit.observe(rows, self.global_steps, trained=True)
        outcome = rows.outcome
        changed, training_scores, scaled, scales = [], [], [], []
        for i, key in enumerate(rows.keys):
            train, scale = signal.get((rows.uids[i], rows.sessions[i]), (outcome[i], 1.0))
            if train != outcome[i]:
                changed.append(i)
                training_scores.append(with_outcome(rows.scores[i], train))
            if scale != 1.0:
                scaled.append(key)
                scales.append(scale)
        changed_keys = [rows.keys[i] for i in changed]
        # verl's estimator reads rm_scores: it sees the training rewards for the duration.
        put_field(tq, part, changed_keys, "rm_scores", training_scores)
        batch = super()._compute_advantage(batch, metrics)
        if changed_keys:
            put_field(tq, part, changed_keys, "rm_scores", [rows.scores[i] for i in changed])
            if not self.config.algorithm.use_kl_in_reward:  # else verl wrote them (with KL)
                training = dict(zip(changed_keys, training_scores, strict=True))
                self._put_token_level_rewards(batch, training)
        if scaled:
            advantages = get_field(tq, part, scaled, "advantages")
            scaled_advantages = [a * s for a, s in zip(advantages, scales, strict=True)]
            put_field(tq, part, scaled, "advantages", scaled_advantages)
        metrics.update(self.exit.end_step(self.global_steps))
        return batch

    def _put_token_level_rewards(self, batch: KVBatchMeta, training: dict) -> None:
        """token_level_rewards for every row (verl reads the field for all rows at once)."""
        scores = get_field(tq, batch.partition_id, batch.keys, "rm_scores")
        rewards = [training.get(k, s) for k, s in zip(batch.keys, scores, strict=True)]
        put_field(tq, batch.partition_id, batch.keys, "token_level_rewards", rewards)

    # -- checkpoints --------------------------------------------------------------------------

    def _save_checkpoint(self) -> None:
        # ExIt's files first, verl's after (its tracker last), then pruning of older ExIt
        # files: the folder verl's tracker names always holds its ExIt files
        # (checkpoint_files).
        folder = os.path.join(
            self.config.trainer.default_local_dir, f"global_step_{self.global_steps}"
        )
        self.exit.save(folder, self.global_steps)
        super()._save_checkpoint()
        self.exit_files.after_save(folder, max_actor_checkpoints(self.config.trainer))

    def _load_checkpoint(self) -> None:
        # verl resolves the folder to resume from (resume_mode, tracker file, resume path),
        # sets the step and loads the actor from `<folder>/actor`: ExIt's state is checked and
        # loaded from that folder just before the actor, so a mismatch stops the run before
        # any weights load.
        def load_exit_state(actor_path: str) -> None:
            folder = os.path.dirname(os.path.normpath(actor_path))
            check_resumable(folder)
            changed = self.exit.load(folder, self.global_steps)
            if changed:
                logger.warning("resuming with changed exit settings: %s", "; ".join(changed))

        listener = _ActorLoadListener(self.actor_rollout_wg, load_exit_state)
        self.actor_rollout_wg = listener
        try:
            super()._load_checkpoint()
        finally:
            self.actor_rollout_wg = listener.worker_group
        if self.global_steps > 0 and not listener.loaded:
            raise RuntimeError("verl resumed without loading the actor checkpoint")

    # -- validation ---------------------------------------------------------------------------

    def _validate(self) -> dict[str, float]:
        metrics = super()._validate()
        options = self.exit_settings.options
        if self._capture is None and options.val_iterations > 0:
            metrics.update(multistep_validation(self, options))
        return metrics

    def _maybe_log_val_generations(self, inputs, outputs, scores):
        if self._capture is not None:
            self._capture.outputs = list(outputs)
            return None
        return super()._maybe_log_val_generations(inputs, outputs, scores)

    def _dump_generations(self, *args, **kwargs):
        if self._capture is not None:
            return None  # verl's dump file of this step holds the regular validation
        return super()._dump_generations(*args, **kwargs)

    def _val_metrics_update(self, data_sources, sample_uids, reward_extra_infos_dict, *args, **kw):
        if self._capture is not None:
            self._capture.uids = [str(u) for u in sample_uids]
            self._capture.scores = [float(r) for r in reward_extra_infos_dict["reward"]]
            self._capture.turns = reward_extra_infos_dict.get(TURNS_KEY)
            notes = reward_extra_infos_dict.get(FEEDBACK_KEY) or [None] * len(sample_uids)
            self._capture.feedback = [n if isinstance(n, str) and n else None for n in notes]
            return {}
        return super()._val_metrics_update(
            data_sources, sample_uids, reward_extra_infos_dict, *args, **kw
        )


class _ActorLoadListener:
    """Forwards to verl's actor worker group; runs `before_load(path)` before the actor loads."""

    def __init__(self, worker_group: Any, before_load: Callable[[str], None]) -> None:
        self.worker_group = worker_group
        self.before_load = before_load
        self.loaded = False

    def load_checkpoint(self, local_path: str, *args: Any, **kwargs: Any) -> Any:
        self.before_load(local_path)
        self.loaded = True
        return self.worker_group.load_checkpoint(local_path, *args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.worker_group, name)


def build_controller(
    config: Any, settings: ExItSettings, dataset: Any, tokenizer: Any, processor: Any = None
) -> ExItController:
    """The controller for a verl config: base tasks, token budget, seed."""
    seed = config.data.get("seed", None)
    return ExItController(
        settings.curriculum,
        dataset,
        prompt_key=config.data.get("prompt_key", "prompt"),
        budget=prompt_budget(config, tokenizer, processor),
        seed=int(seed) if seed is not None else 0,
        embed_threads=settings.options.embed_threads,
    )


def prompt_budget(config: Any, tokenizer: Any, processor: Any) -> PromptBudget:
    """verl's prompt budget and token builder, set up as its agent loop worker does."""
    from verl.utils.config import omega_conf_to_dataclass

    model_config = omega_conf_to_dataclass(config.actor_rollout_ref.model)
    model_type = getattr(model_config.hf_config, "model_type", None)
    return PromptBudget.for_verl(
        tokenizer,
        int(config.actor_rollout_ref.rollout.prompt_length),
        hf_model_type=model_type if isinstance(model_type, str) else None,
        chat_template_kwargs=config.data.get("apply_chat_template_kwargs", {}),
        processor=processor,
    )
