"""The ExIt trainers: verl's v1 trainers with the ExIt curriculum.

Importing this module registers two classes with verl's `register_trainer`;
`exit_verl.verl.plugin` (the `verl.plugins` entry point) imports it right after verl's v1
trainer package loads, and verl's `TaskRunnerV1` builds the one its config names:

- "exit" (`ExItTrainer`): verl's `PPOTrainerSync` loop; the prompts of step t are drawn after
  the groups of step t - 1 are observed.
- "exit_colocate_async" (`ExItColocateAsyncTrainer`): verl's `PPOTrainerColocateAsync` loop;
  prompts are drawn as verl refills its pipeline, and a group is observed when it is trained
  or dropped, possibly steps after it was drawn (its staleness is reported).

Each reports verl's own mode ("sync", "colocate_async") as `trainer_mode`: verl's base class
compares the mode with "sync" to choose the replay buffer, the dataloader fetch size,
TransferQueue checkpointing and re-issuing of in-flight prompts, and looks up
`trainer.v1.<mode>` for `parameter_sync_step`. Everything else is verl's; the overrides
(`ExItTrainerBase`):

- `_build_replay_buffer`: verl's buffer (sync or async), reporting every group it drops and
  every group it hands over without rows (`replay_buffer`).
- `_init_dataloader`: after verl builds its datasets, the `ExItController` takes the
  training set as base tasks; `_fetch_one_gen_batch` draws each batch from the curriculum.
- `_balance_batch`: once a local update's groups are sampled (and scored), they are observed
  on a background thread, overlapping verl's log-prob, reference and value passes.
- `_compute_advantage`: waits for that observation; verl's estimator runs on the curriculum's
  training rewards, `rm_scores` keeps the task rewards (so `critic/score/*` shows them,
  `critic/rewards/*` the training rewards), then the advantages are multiplied by the
  curriculum's advantage scale (the diversity bonus).
- `step`: the step's `exit/` metrics and `timing_s/exit_*` times; the reference reset
  (`exit.ref_reset_every`) after the update.
- `_init_resource_pool_mgr`: with a reference reset, verl's actor/rollout/ref worker class
  becomes its subclass with the reset methods (`reference_worker`).
- `_save_checkpoint` / `_load_checkpoint`: ExIt state (prompts in flight and a reset
  reference included) in verl's checkpoint folders, saved and restored as one unit with
  verl's (checkpoint_files).
- `_validate`: adds multi-step self-improvement (`exit_val/`), run through verl's own
  `_validate` (`validation`).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import transfer_queue as tq
from transfer_queue import KVBatchMeta
from verl.trainer.ppo.v1.trainer_base import register_trainer
from verl.trainer.ppo.v1.trainer_colocate_async import PPOTrainerColocateAsync
from verl.trainer.ppo.v1.trainer_sync import PPOTrainerSync
from verl.utils import tensordict_utils as tu

from exit_verl.verl.checkpoint_files import (
    ExItCheckpointFiles,
    check_resumable,
    copy_to_remote,
    max_actor_checkpoints,
)
from exit_verl.verl.contract import require_trainer_contract, warn_if_untested
from exit_verl.verl.controller import ExItController
from exit_verl.verl.mode import ASYNC_TRAINER_MODE, TRAINER_MODE, TRAINER_MODES
from exit_verl.verl.prompt_budget import PromptBudget
from exit_verl.verl.reference import ReferenceResetter
from exit_verl.verl.replay_buffer import adopt
from exit_verl.verl.rows import (
    FEEDBACK_KEY,
    TURNS_KEY,
    Rows,
    fetch_rows,
    get_field,
    put_field,
    with_outcome,
)
from exit_verl.verl.settings import ExItSettings, exit_settings
from exit_verl.verl.validation import ValidationCapture, multistep_validation

logger = logging.getLogger("exit_verl")

Signal = dict[tuple[str, int], tuple[float, float]]


class ExItTrainerBase:
    """ExIt on one of verl's v1 trainer loops (module docstring). A subclass names its mode
    (`MODE`) and puts this class before verl's trainer class in its bases."""

    MODE: str
    exit: ExItController

    def __init__(self, config: Any) -> None:
        # Before verl builds anything: a verl whose hooks ExIt would miss, or a bad exit.*
        # setting, fails first.
        require_trainer_contract()
        warn_if_untested()
        self.exit_settings = exit_settings(config)
        self.exit_files = ExItCheckpointFiles()
        self.reference = ReferenceResetter(self.exit_settings.reference)
        self._capture: ValidationCapture | None = None
        self._observing: Future | None = None
        self._observer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="exit-observe")
        self._exit_lock = threading.Lock()  # one curriculum call at a time
        super().__init__(config)

    @property
    def trainer_mode(self) -> str:
        return TRAINER_MODES[self.MODE]

    @trainer_mode.setter
    def trainer_mode(self, value: str) -> None:
        # verl's __init__ assigns config.trainer.v1.trainer_mode here.
        if value != self.MODE:
            raise ValueError(
                f"{type(self).__name__} runs as trainer mode {self.MODE!r}, got {value!r}"
            )

    # -- workers ------------------------------------------------------------------------------

    def _init_resource_pool_mgr(self) -> None:
        super()._init_resource_pool_mgr()
        self.reference.use_worker_class(self.role_worker_mapping)

    # -- prompts ------------------------------------------------------------------------------

    def _build_replay_buffer(self):
        return adopt(super()._build_replay_buffer(), self._observe_dropped, self._observe_lost)

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
        with self._exit_lock:
            return tu.get_tensordict(self.exit.next_batch_dict(n, self.global_steps))

    # -- observing groups ---------------------------------------------------------------------

    def _observe_dropped(
        self, partition_id: str, keys: list[str], uids: set[str], reasons: dict[str, str]
    ) -> None:
        """Groups verl's replay buffer removes untrained: observed with their reason; those
        without a single row are lost."""
        with self._exit_lock:
            pending = uids & set(self.exit.pending)
            for reason in sorted(set(reasons.values())):
                chosen = {uid for uid in pending if reasons[uid] == reason}
                rows = fetch_rows(tq, keys, partition_id, self.tokenizer, chosen)
                if rows.keys:
                    self.exit.observe(rows, self.global_steps, trained=False, reason=reason)
                self.exit.lost(chosen - set(rows.uids))

    def _observe_lost(self, uids: set[str]) -> None:
        with self._exit_lock:
            self.exit.lost(uids)

    def _balance_batch(self, batch, metrics, logging_prefix="global_seqlen", keep_minibatch=False):
        """verl's balancing, then the sampled groups are observed on a background thread while
        verl computes log-probs (their rows and rewards are final here)."""
        batch = super()._balance_batch(batch, metrics, logging_prefix, keep_minibatch)
        rows = self._trained_rows(batch)
        self._observing = self._observer.submit(self._observe_trained, rows, self.global_steps)
        return batch

    def _trained_rows(self, batch: KVBatchMeta) -> Rows:
        real = [
            k for k, tag in zip(batch.keys, batch.tags, strict=True) if not tag.get("is_padding")
        ]
        with self._exit_lock:
            pending = set(self.exit.pending)
        return fetch_rows(tq, real, batch.partition_id, self.tokenizer, pending)

    def _observe_trained(self, rows: Rows, step: int) -> tuple[Rows, Signal]:
        with self._exit_lock:
            return rows, self.exit.observe(rows, step, trained=True)

    def _take_observation(self, batch: KVBatchMeta) -> tuple[Rows, Signal]:
        """The observation started for this batch, waited for (`timing_s/exit_wait`); computed
        here when none was started."""
        observing, self._observing = self._observing, None
        if observing is None:
            return self._observe_trained(self._trained_rows(batch), self.global_steps)
        start = time.perf_counter()
        try:
            return observing.result()
        finally:
            waited = time.perf_counter() - start
            self.timing_raw["exit_wait"] = self.timing_raw.get("exit_wait", 0.0) + waited

    # -- rewards and advantages ---------------------------------------------------------------

    def _compute_advantage(self, batch: KVBatchMeta, metrics: dict) -> KVBatchMeta:
        part = batch.partition_id
        rows, signal = self._take_observation(batch)
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
        return batch

    def _put_token_level_rewards(self, batch: KVBatchMeta, training: dict) -> None:
        """token_level_rewards for every row (verl reads the field for all rows at once)."""
        scores = get_field(tq, batch.partition_id, batch.keys, "rm_scores")
        rewards = [training.get(k, s) for k, s in zip(batch.keys, scores, strict=True)]
        put_field(tq, batch.partition_id, batch.keys, "token_level_rewards", rewards)

    # -- the step -----------------------------------------------------------------------------

    def step(self, metrics: dict, timing_raw: dict) -> KVBatchMeta:
        """verl's step (one or `parameter_sync_step` local updates), then the step's `exit/`
        metrics and, when due, the reference reset."""
        batch = super().step(metrics, timing_raw)
        with self._exit_lock:
            metrics.update(self.exit.step_metrics())
        for name, seconds in self.exit.timing.items():
            timing_raw[name] = timing_raw.get(name, 0.0) + seconds
        metrics.update(self.reference.after_step(self, timing_raw))
        return batch

    # -- checkpoints --------------------------------------------------------------------------

    def _save_checkpoint(self) -> None:
        # ExIt's files first, verl's after (its tracker last), then pruning of older ExIt
        # files: the folder verl's tracker names always holds its ExIt files
        # (checkpoint_files).
        folder = os.path.join(
            self.config.trainer.default_local_dir, f"global_step_{self.global_steps}"
        )
        with self._exit_lock:
            self.exit.save(folder, self.global_steps)
        self.reference.save(self, folder)
        remote = self.config.trainer.get("default_hdfs_dir", None)
        if remote:
            copy_to_remote(folder, remote, self.global_steps)
        super()._save_checkpoint()
        self.exit_files.after_save(folder, max_actor_checkpoints(self.config.trainer))

    def _load_checkpoint(self) -> None:
        # verl resolves the folder to resume from (resume_mode, tracker file, resume path),
        # sets the step and loads the actor from `<folder>/actor`: ExIt's state (and a reset
        # reference) is checked and loaded from that folder just before the actor, so a
        # mismatch stops the run before any weights load.
        def load_exit_state(actor_path: str) -> None:
            folder = os.path.dirname(os.path.normpath(actor_path))
            check_resumable(folder)
            changed = self.exit.load(folder, self.global_steps)
            if changed:
                logger.warning("resuming with changed exit settings: %s", "; ".join(changed))
            self.reference.load(self, folder)

        listener = _ActorLoadListener(self.actor_rollout_wg, load_exit_state)
        self.actor_rollout_wg = listener
        try:
            super()._load_checkpoint()
        finally:
            self.actor_rollout_wg = listener.worker_group
        if self.global_steps > 0 and not listener.loaded:
            raise RuntimeError("verl resumed without loading the actor checkpoint")
        if self.global_steps > 0:
            self._check_restored_prompts()

    def _check_restored_prompts(self) -> None:
        """The prompts ExIt restored as in flight are the prompt groups verl restored to
        TransferQueue (async modes), so every group verl re-issues or trains is known."""
        pending = set(self.exit.pending)
        if self.trainer_mode == "sync":
            if pending:
                raise ValueError(
                    f"the checkpoint holds {len(pending)} prompts in flight, which only verl's "
                    "async modes restore: resume it with trainer.v1.trainer_mode="
                    f"{ASYNC_TRAINER_MODE}"
                )
            return
        tags = (tq.kv_list("train") or {}).get("train", {})
        queued = {key for key, tag in tags.items() if tag.get("is_prompt", False)}
        if queued != pending:
            raise ValueError(
                f"verl restored {len(queued)} prompt groups to TransferQueue, ExIt's state "
                f"holds {len(pending)} prompts in flight ({len(queued - pending)} unknown to "
                f"ExIt, {len(pending - queued)} missing): the checkpoint mixes two saves"
            )

    # -- validation ---------------------------------------------------------------------------

    def _validate(self) -> dict[str, float]:
        options = self.exit_settings.options
        if self._capture is not None or options.val_iterations <= 0:
            return super()._validate()
        return multistep_validation(self, options, regular=super()._validate)

    def _maybe_log_val_generations(self, inputs, outputs, scores):
        if self._capture is not None:
            self._capture.outputs = list(outputs)
            if not self._capture.passthrough:
                return None
        return super()._maybe_log_val_generations(inputs, outputs, scores)

    def _dump_generations(self, *args, **kwargs):
        if self._capture is not None and not self._capture.passthrough:
            return None  # verl's dump file of this step holds the regular validation
        return super()._dump_generations(*args, **kwargs)

    def _val_metrics_update(self, data_sources, sample_uids, reward_extra_infos_dict, *args, **kw):
        if self._capture is not None:
            self._capture.uids = [str(u) for u in sample_uids]
            self._capture.scores = [float(r) for r in reward_extra_infos_dict["reward"]]
            self._capture.turns = reward_extra_infos_dict.get(TURNS_KEY)
            notes = reward_extra_infos_dict.get(FEEDBACK_KEY) or [None] * len(sample_uids)
            self._capture.feedback = [n if isinstance(n, str) and n else None for n in notes]
            if not self._capture.passthrough:
                return {}
        return super()._val_metrics_update(
            data_sources, sample_uids, reward_extra_infos_dict, *args, **kw
        )


@register_trainer(TRAINER_MODE)
class ExItTrainer(ExItTrainerBase, PPOTrainerSync):
    """ExIt on verl's sync loop: trainer mode "exit"."""

    MODE = TRAINER_MODE


@register_trainer(ASYNC_TRAINER_MODE)
class ExItColocateAsyncTrainer(ExItTrainerBase, PPOTrainerColocateAsync):
    """ExIt on verl's colocate_async loop: trainer mode "exit_colocate_async"."""

    MODE = ASYNC_TRAINER_MODE


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
        embed_device=settings.options.embed_device,
        embedder_download=settings.options.embedder_download,
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
