"""`ExItCurriculum`: the ExIt autocurriculum over base tasks and an archive of histories.

Data flow of one training step (paper Algorithm 1):

    next_batch(n, step)  once the archive holds `min_archive_size` entries, each prompt is
                         with probability `p_replay` a history drawn from the archive
                         (P ∝ exp(κ·S)) and presented as self-improve or, with `p_diverge`,
                         self-diverge; otherwise a fresh base task (a seeded shuffle).
    observe(...)         1. training rewards: rescale by `reward_range`, iteration reward
                         2. learnability S of each group
                         3. diversity bonus → (rewards for the estimator, advantage scale)
                         4. archive: re-score replayed entries with S, add children
                         returns `Feedback(rewards, advantage_scale, learnability)`.

With `iterate=False` (the curriculum-only ablation) the archive holds base tasks instead,
scored by S and replayed unchanged. docs/exit.md lists every choice and its source.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

import numpy as np

from exit_verl.archive import TaskArchive
from exit_verl.archive_policy import archive_policy
from exit_verl.bonus import BONUSES, BonusGroup
from exit_verl.config import ExItConfig
from exit_verl.curriculum_metrics import (
    ArchiveMetrics,
    BatchMetrics,
    CurriculumMetrics,
    ObserveMetrics,
    last_call_metrics,
)
from exit_verl.embedding import Embedder, make_embedder
from exit_verl.history import KINDS, History, Turn
from exit_verl.resume import STATE_VERSION, RestoredState, ResumeTarget
from exit_verl.scoring import ITERATION_REWARDS, LEARNABILITY, UNIT_RANGE, quality, rescale
from exit_verl.task_instance import Feedback, TaskInstance

__all__ = ["KINDS", "CurriculumMetrics", "ExItCurriculum", "Feedback", "TaskInstance"]

# One rollout: a response string, or for multi-turn tasks the turns it produced (the first
# answers the prompt's request, so its observation is None).
Rollout = str | Sequence[Turn]


def _normalize_tasks(base_tasks: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    if len(base_tasks) == 0:
        raise ValueError("base_tasks is empty")
    tasks = []
    for i, task in enumerate(base_tasks):
        if not isinstance(task, Mapping) or "prompt" not in task or "answer" not in task:
            raise ValueError(f"base task {i} needs 'prompt' and 'answer' keys")
        tasks.append(
            {**task, "id": str(task.get("id", i)), "data_source": str(task.get("data_source", ""))}
        )
    return tasks


class ExItCurriculum:
    """See the module docstring. `archive` is the underlying `TaskArchive`."""

    def __init__(
        self,
        config: ExItConfig,
        base_tasks: Sequence[Mapping[str, Any]],
        embedder: Embedder | None = None,
        seed: int = 0,
    ) -> None:
        config.validate()
        self.config = config
        self.tasks = _normalize_tasks(base_tasks)
        self.templates = config.templates()
        self.learnability_fn = LEARNABILITY[config.learnability]
        self.iteration_reward_fn = ITERATION_REWARDS[config.iteration_reward]
        self.bonus = BONUSES[config.diversity_bonus]
        self._embedder = embedder
        self.seed = int(seed)
        self._rng = np.random.default_rng(self.seed)
        self._epoch = 0
        self._cursor = 0
        self._order = self._epoch_order(0)
        self.archive = self._new_archive()
        self.policy = archive_policy(config)
        self._batch_metrics = BatchMetrics()
        self._observe_metrics = ObserveMetrics()
        self._attempts: dict[int, int] = {}  # archive id -> hash of its attempt text
        self._fingerprint: str | None = None

    # -- construction ---------------------------------------------------------------------

    @property
    def embedder(self) -> Embedder:
        """The bonus embedder, created on first use (constructing loads no model)."""
        if self._embedder is None:
            self._embedder = make_embedder(self.config.embedder)
        return self._embedder

    def _archive_options(self) -> dict[str, Any]:
        """`TaskArchive` options these settings give (the seed aside)."""
        c = self.config
        # Archive-novelty bonuses compare responses with archived ones: those store vectors.
        dim = self.embedder.dim if self.bonus.needs_novelty else None
        return {
            "capacity": c.capacity,
            "embedding_dim": dim,
            "metric": "cosine",
            "prioritization": c.prioritization,
            "temperature": c.temperature,
            "staleness_coef": c.staleness_coef,
            "admission": c.admission,
        }

    def _new_archive(self) -> TaskArchive:
        options = self._archive_options()
        return TaskArchive(options.pop("capacity"), seed=self.seed, **options)

    def _epoch_order(self, epoch: int) -> np.ndarray:
        return np.random.default_rng([self.seed, epoch]).permutation(len(self.tasks))

    # -- selection ------------------------------------------------------------------------

    def _next_base_index(self) -> int:
        if self._cursor == len(self._order):
            self._epoch += 1
            self._cursor = 0
            self._order = self._epoch_order(self._epoch)
        index = int(self._order[self._cursor])
        self._cursor += 1
        return index

    def _instance(
        self,
        index: int,
        kind: str = "base",
        archive_id: int | None = None,
        depth: int = 0,
        history: History | None = None,
    ) -> TaskInstance:
        task = self.tasks[index]
        inst = TaskInstance(
            prompt=[],
            base_id=task["id"],
            base_index=index,
            archive_id=archive_id,
            kind=kind,
            depth=depth,
            answer=task["answer"],
            data_source=task["data_source"],
            task_prompt=task["prompt"],
            previous_attempt=history.attempt if history and kind != "base" else None,
            previous_reward=history.reward if history and kind != "base" else None,
            history=history,
        )
        inst.prompt = inst.render(self.templates)
        return inst

    def restore_instance(self, state: Mapping[str, Any]) -> TaskInstance:
        """The instance `TaskInstance.state()` describes, over this curriculum's base tasks;
        ValueError when the state is malformed or names a task this curriculum lacks."""
        if not isinstance(state, Mapping) or set(state) != {
            "base_index",
            "kind",
            "archive_id",
            "depth",
            "history",
            "extra",
        }:
            raise ValueError(f"not a task instance state: {state!r}")
        index, archive_id, depth = state["base_index"], state["archive_id"], state["depth"]
        if not _is_int(index) or not 0 <= index < len(self.tasks):
            raise ValueError(f"task instance state names base task {index!r}")
        if archive_id is not None and not (_is_int(archive_id) and archive_id >= 0):
            raise ValueError(f"task instance state: archive_id {archive_id!r}")
        if not _is_int(depth) or depth < 0:
            raise ValueError(f"task instance state: depth {depth!r}")
        if state["kind"] not in KINDS or not isinstance(state["extra"], Mapping):
            raise ValueError(f"task instance state: kind {state['kind']!r} or extra malformed")
        history = None if state["history"] is None else History.from_bytes(state["history"])
        if history is not None and history.base_index != index:
            raise ValueError("task instance state: its history names another base task")
        inst = self._instance(index, state["kind"], archive_id, depth, history)
        inst.extra = dict(state["extra"])
        return inst

    def _replay(self, archive_id: int, payload: bytes, depth: int, diverge: bool) -> TaskInstance:
        history = History.from_bytes(payload)
        if not 0 <= history.base_index < len(self.tasks):
            raise ValueError(f"archive entry {archive_id} names base task {history.base_index}")
        shown = self.policy.replay(archive_id, history, depth, diverge, self._rng)
        index = history.base_index
        return self._instance(index, shown.kind, archive_id, shown.depth, shown.history)

    def next_batch(self, n: int, step: int) -> list[TaskInstance]:
        """`n` training prompts for `step`: replays (by learnability) mixed with base tasks."""
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
            raise ValueError(f"n must be a non-negative int, got {n!r}")
        _check_step(step)
        if len(self.archive) > 0 and step < self.archive.stats()["max_last_step"]:
            raise ValueError(f"step {step} is before the archive's last step")
        c = self.config
        can_replay = len(self.archive) >= c.min_archive_size
        replay = (self._rng.random(n) < c.p_replay) & can_replay
        diverge = self._rng.random(n) < c.p_diverge
        ids = self.archive.sample(int(replay.sum()), step=step) if replay.any() else []
        payloads = self.archive.get(ids) if len(ids) else []
        depths = self.archive.lineage(ids)["depth"] if len(ids) else []
        replayed = iter(zip(ids, payloads, depths, strict=True))
        batch: list[TaskInstance] = []
        for i in range(int(n)):
            if replay[i]:
                archive_id, payload, depth = next(replayed)
                batch.append(self._replay(int(archive_id), payload, int(depth), bool(diverge[i])))
            else:
                batch.append(self._instance(self._next_base_index()))
        self._batch_metrics = BatchMetrics(
            replay_fraction=float(replay.mean()) if n else 0.0,
            diverge_fraction=float(np.mean([b.kind == "diverge" for b in batch])) if n else 0.0,
            depth_mean=float(np.mean([b.depth for b in batch])) if n else 0.0,
            depth_max=float(max((b.depth for b in batch), default=0)),
        )
        return batch

    # -- feedback -------------------------------------------------------------------------

    def observe(
        self,
        batch: Sequence[TaskInstance],
        responses: Sequence[Sequence[Rollout]],
        rewards: Any,
        step: int,
        *,
        feedback: Sequence[Sequence[str | None]] | None = None,
    ) -> Feedback:
        """Scores the batch's groups, updates the archive and returns the training signal.

        `responses` holds n groups of G rollouts (strings, or for multi-turn tasks
        sequences of `Turn`), `rewards` the (n, G) task rewards, `feedback` optional (n, G)
        texts shown with an attempt when it is iterated on (e.g. an error trace).
        """
        task_rewards, rollouts = self._check_observation(batch, responses, rewards, feedback)
        _check_step(step)
        scores, train = self._training_rewards(batch, task_rewards)
        learn = np.array([self.learnability_fn(row, UNIT_RANGE) for row in train])
        embeddings = self._embed(rollouts) if self.bonus.needs_embeddings else None
        shaped, scale = self._apply_bonus(train, embeddings)
        admitted = self.policy.update(
            self.archive, batch, rollouts, scores, learn, embeddings, step, self._rng
        )
        for payload, archive_id in zip(admitted.payloads, admitted.ids, strict=True):
            self._attempts[archive_id] = _attempt_hash(payload)
        self._observe_metrics = ObserveMetrics(
            learnability_mean=_mean(learn),
            informative_fraction=_mean(learn > 0),
            children_added=float(admitted.added),
            children_rejected=float(admitted.rejected),
            reward_mean=_mean(task_rewards),
            training_reward_mean=_mean(train),
            advantage_scale_mean=_mean(scale),
            bonus_reward_mean=_mean(shaped - train),
            bonus_mean=_mean(np.abs(scale - 1.0)) + _mean(np.abs(shaped - train)),
        )
        return Feedback(shaped, scale, learn)

    def _check_observation(
        self,
        batch: Sequence[TaskInstance],
        responses: Sequence[Sequence[Rollout]],
        rewards: Any,
        feedback: Sequence[Sequence[str | None]] | None,
    ) -> tuple[np.ndarray, list[list[tuple[Turn, ...]]]]:
        """(n, G) float rewards and the rollouts as turns; ValueError before any change."""
        n = len(batch)
        if len(responses) != n:
            raise ValueError(f"got {len(responses)} response groups for {n} task instances")
        try:
            r = np.asarray(rewards, dtype=np.float64)
        except (TypeError, ValueError):
            raise ValueError("rewards must be a numeric (n, G) array") from None
        if r.ndim != 2 or r.shape[0] != n:
            raise ValueError(f"rewards must have shape ({n}, G), got {r.shape}")
        g = r.shape[1]
        if g < 1:
            raise ValueError("each group needs at least one response")
        if not np.isfinite(r).all():
            raise ValueError("rewards must be finite")
        if feedback is not None and (
            len(feedback) != n
            or any(
                isinstance(f, str) or not isinstance(f, Sequence) or len(f) != g for f in feedback
            )
        ):
            raise ValueError(f"feedback must be n = {n} lists of G = {g} texts (or None)")
        rollouts = []
        for i, (inst, group) in enumerate(zip(batch, responses, strict=True)):
            self._check_instance(i, inst)
            if isinstance(group, str) or len(group) != g:
                raise ValueError(f"responses[{i}] must be a list of {g} rollouts")
            notes = feedback[i] if feedback is not None else [None] * g
            rollouts.append([_as_turns(i, x, note) for x, note in zip(group, notes, strict=True)])
        return r, rollouts

    def _check_instance(self, i: int, inst: TaskInstance) -> None:
        if not isinstance(inst, TaskInstance):
            raise ValueError(f"batch[{i}] is not a TaskInstance")
        if inst.kind not in KINDS:
            raise ValueError(f"batch[{i}] has unknown kind {inst.kind!r}")
        if not 0 <= inst.base_index < len(self.tasks):
            raise ValueError(f"batch[{i}] refers to base task {inst.base_index}")
        if inst.kind != "base" and (
            inst.archive_id is None or inst.history is None or not inst.history.turns
        ):
            raise ValueError(f"batch[{i}]: an {inst.kind} step needs its archived history")
        self.policy.check_instance(i, inst)

    def _training_rewards(
        self, batch: Sequence[TaskInstance], task_rewards: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Step 1: (quality in [0, 1] stored with each attempt, training rewards)."""
        reward_range = self.config.reward_range
        rescaled = rescale(task_rewards, reward_range)
        rows = [
            self.iteration_reward_fn(rescaled[i], inst.kind, inst.previous_reward)
            for i, inst in enumerate(batch)
        ]
        train = np.stack(rows) if rows else rescaled.copy()
        return quality(task_rewards, reward_range), train

    def _embed(self, rollouts: list[list[tuple[Turn, ...]]]) -> np.ndarray | None:
        # Tool-use turns embed their calls and answer (`Turn.text`).
        texts = ["\n\n".join(t.text for t in turns) for group in rollouts for turns in group]
        if not texts:
            return None
        n, g = len(rollouts), len(rollouts[0])
        return np.asarray(self.embedder(texts), dtype=np.float32).reshape(n, g, -1)

    def _apply_bonus(
        self, train: np.ndarray, embeddings: np.ndarray | None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Step 3: the registered bonus, group by group."""
        if train.size == 0:
            return train.copy(), np.ones_like(train)
        novelty = None
        if self.bonus.needs_novelty:
            assert embeddings is not None
            flat = embeddings.reshape(train.size, -1)
            novelty = self.archive.novelty(flat, k=self.config.novelty_k).reshape(train.shape)
        shaped, scale = np.empty_like(train), np.empty_like(train)
        for i in range(train.shape[0]):
            group = BonusGroup(
                rewards=train[i],
                embeddings=None if embeddings is None else embeddings[i],
                novelty=None if novelty is None else novelty[i],
                coef=self.config.diversity_coef,
            )
            shaped[i], scale[i] = self.bonus.fn(group)
        return shaped, scale

    # -- monitoring and persistence -------------------------------------------------------

    def metrics(self) -> CurriculumMetrics:
        """The archive now and the last batch/observe call (a mapping of flat names to
        floats; prefix them for a tracker)."""
        stats = self.archive.stats()
        archive = ArchiveMetrics(
            archive_size=float(stats["size"]),
            archive_evicted=float(stats["evicted"]),
            archive_rejected=float(stats.get("rejected", 0)),
            archive_depth_max=float(stats["depth_max"]),
            archive_score_mean=float(stats["score_mean"]) if stats["size"] else 0.0,
            archive_distinct=float(self._distinct_attempts()),
            epoch=float(self._epoch),
        )
        return CurriculumMetrics(archive, self._batch_metrics, self._observe_metrics)

    def _distinct_attempts(self) -> int:
        """How many different attempt texts the resident entries hold."""
        resident = [int(i) for i in self.archive.ids()]
        unknown = [i for i in resident if i not in self._attempts]
        if unknown:  # after a restore: read those payloads once
            for i, payload in zip(unknown, self.archive.get(unknown), strict=True):
                self._attempts[i] = _attempt_hash(payload)
        self._attempts = {i: self._attempts[i] for i in resident}
        return len(set(self._attempts.values()))

    def state_dict(self, include_archive: bool = True) -> dict[str, Any]:
        """Everything needed to continue exactly: archive snapshot, RNG and dataset cursor,
        with the settings and a fingerprint of the base tasks that `load_state_dict` checks.

        `include_archive=False` leaves out the snapshot bytes, for callers that save the
        archive as its own file and put the bytes back before loading."""
        state = {
            "version": STATE_VERSION,
            "config": self.config.to_dict(),
            "seed": self.seed,
            "num_tasks": len(self.tasks),
            "tasks_fingerprint": self.tasks_fingerprint,
            "rng": self._rng.bit_generator.state,
            "epoch": self._epoch,
            "cursor": self._cursor,
            "last_metrics": last_call_metrics(self._batch_metrics, self._observe_metrics),
        }
        if include_archive:
            state["archive"] = self.archive.to_bytes()
        return state

    def load_state_dict(self, state: Mapping[str, Any]) -> list[str]:
        """Restores `state_dict()` output: every value is parsed and checked against this
        curriculum (base tasks, archive-shaping settings) before anything is assigned, so a
        state that does not fit raises ValueError naming the mismatch and changes nothing.

        Returns the settings that differ from the saved ones but may change on resume (e.g.
        `p_replay`), as "name: saved -> now" lines."""
        target = ResumeTarget(
            len(self.tasks),
            self.tasks_fingerprint,
            self.config,
            self._archive_options(),
            self.policy,
        )
        restored = RestoredState.parse(state, target)
        self.seed = restored.seed
        self.archive = restored.archive
        self._rng = restored.rng
        self._epoch = restored.epoch
        self._cursor = restored.cursor
        self._order = self._epoch_order(self._epoch)
        self.policy = restored.policy
        self._batch_metrics, self._observe_metrics = restored.last_metrics
        self._attempts = {}
        return restored.changed_settings

    @property
    def tasks_fingerprint(self) -> str:
        """SHA-256 of the base tasks (id, prompt, answer, data source), in order."""
        if self._fingerprint is None:
            canonical = [[t["id"], t["prompt"], t["answer"], t["data_source"]] for t in self.tasks]
            text = json.dumps(canonical, sort_keys=True, default=repr, ensure_ascii=False)
            self._fingerprint = hashlib.sha256(text.encode()).hexdigest()
        return self._fingerprint


def _attempt_hash(payload: bytes) -> int:
    turns = History.from_bytes(payload).turns
    return hash("\x00".join(t.response for t in turns))


def _check_step(step: Any) -> None:
    if isinstance(step, bool) or not isinstance(step, (int, np.integer)) or step < 0:
        raise ValueError(f"step must be a non-negative int, got {step!r}")


def _is_int(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def _mean(values: np.ndarray) -> float:
    values = np.asarray(values, dtype=np.float64)
    return float(values.mean()) if values.size else 0.0


def _as_turns(i: int, rollout: Any, note: str | None) -> tuple[Turn, ...]:
    if isinstance(rollout, str):
        return (Turn(None, rollout, None, note),)
    if (
        isinstance(rollout, Sequence)
        and len(rollout) > 0
        and all(isinstance(t, Turn) for t in rollout)
        and rollout[0].observation is None
        and all(t.observation is not None for t in rollout[1:])
    ):
        turns = tuple(rollout)
        if note is not None and turns[-1].feedback is None:  # the episode's, on its last turn
            turns = (*turns[:-1], replace(turns[-1], feedback=note))
        return turns
    raise ValueError(
        f"responses[{i}] must hold strings or non-empty sequences of Turn (the first answers "
        "the prompt: observation None; every later one has the observation that led to it)"
    )
