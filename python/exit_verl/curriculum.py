"""`ExItCurriculum`: the ExIt autocurriculum over base tasks and an archive of partial histories.

Each training prompt is one iteration (paper, Algorithm 1): with probability `p_replay` (once
the archive holds `min_archive_size` entries) a partial history — a base task plus an earlier
attempt — is drawn from the archive by learnability and presented as "improve this" or, with
probability `p_diverge`, "solve it again by a significantly different approach"; otherwise a
fresh base task is drawn (a seeded shuffle, epoch after epoch). After the rollouts, `observe`
scores each group by learnability, re-scores the replayed entry, adds the group's responses
as new partial histories (children) when the group was informative, and returns the rewards
shaped by the optional diversity bonus.

Choices where the paper is silent, and ours: an archived partial history keeps only the most
recent attempt (bounded prompts; the lineage keeps the chain); a replayed entry's score
becomes its newest group's learnability (not a running mean), so stale difficulty estimates do
not linger; children enter with their group's learnability as initial score.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from exit_verl.archive import TaskArchive
from exit_verl.config import ExItConfig
from exit_verl.embedding import Embedder, make_embedder
from exit_verl.prompts import Message, base_messages, iteration_messages
from exit_verl.scoring import LEARNABILITY, centroid_bonus, knn_bonus, range_normalize

KINDS = ("base", "improve", "diverge")
STATE_VERSION = 1


@dataclass
class TaskInstance:
    """One training prompt: a base task (depth 0) or an iteration on an archived attempt."""

    prompt: list[Message]
    base_id: str
    base_index: int
    archive_id: int | None
    kind: str
    depth: int
    answer: Any
    data_source: str
    previous_attempt: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def _normalize_tasks(base_tasks: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    if len(base_tasks) == 0:
        raise ValueError("base_tasks is empty")
    tasks = []
    for i, task in enumerate(base_tasks):
        if not isinstance(task, Mapping) or "prompt" not in task or "answer" not in task:
            raise ValueError(f"base task {i} needs 'prompt' and 'answer' keys")
        tasks.append(
            {
                **task,
                "id": str(task.get("id", i)),
                "data_source": str(task.get("data_source", "")),
            }
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
        needs_embeddings = config.diversity_bonus != "none"
        if embedder is None and needs_embeddings:
            embedder = make_embedder(config.embedder)
        self.embedder = embedder
        self.seed = int(seed)
        self._rng = np.random.default_rng(self.seed)
        self._epoch = 0
        self._cursor = 0
        self._order = self._epoch_order(0)
        self.archive = self._new_archive()
        self._last: dict[str, float] = {}

    # -- construction ---------------------------------------------------------------------

    def _uses_archive_embeddings(self) -> bool:
        return self.config.diversity_bonus in ("knn", "both")

    def _new_archive(self) -> TaskArchive:
        c = self.config
        dim = self.embedder.dim if self._uses_archive_embeddings() and self.embedder else None
        return TaskArchive(
            c.capacity,
            embedding_dim=dim,
            metric="cosine",
            prioritization=c.prioritization,
            temperature=c.temperature,
            staleness_coef=c.staleness_coef,
            seed=self.seed,
        )

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

    def _base_instance(self, index: int) -> TaskInstance:
        task = self.tasks[index]
        return TaskInstance(
            prompt=base_messages(task["prompt"], self.templates),
            base_id=task["id"],
            base_index=index,
            archive_id=None,
            kind="base",
            depth=0,
            answer=task["answer"],
            data_source=task["data_source"],
        )

    def next_batch(self, n: int, step: int) -> list[TaskInstance]:
        """`n` training prompts for `step`: replays (by learnability) mixed with base tasks."""
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise ValueError(f"n must be a non-negative int, got {n!r}")
        if step < 0:
            raise ValueError(f"step must be >= 0, got {step}")
        if len(self.archive) > 0 and step < self.archive.stats()["max_last_step"]:
            raise ValueError(f"step {step} is before the archive's last step")
        c = self.config
        can_replay = len(self.archive) >= c.min_archive_size
        replay = (self._rng.random(n) < c.p_replay) & can_replay
        diverge = self._rng.random(n) < c.p_diverge
        ids = self.archive.sample(int(replay.sum()), step=step) if replay.any() else []
        payloads = self.archive.get(ids) if len(ids) else []
        depths = self.archive.lineage(ids)["depth"] if len(ids) else []
        batch: list[TaskInstance] = []
        replayed = iter(zip(ids, payloads, depths, strict=True))
        for i in range(n):
            if not replay[i]:
                batch.append(self._base_instance(self._next_base_index()))
                continue
            archive_id, payload, lineage_depth = next(replayed)
            history = json.loads(payload)
            task = self.tasks[history["base_index"]]
            kind = "diverge" if diverge[i] else "improve"
            batch.append(
                TaskInstance(
                    prompt=iteration_messages(
                        task["prompt"],
                        history["attempt"],
                        kind,
                        self.templates,
                        c.attempt_clip_chars,
                    ),
                    base_id=task["id"],
                    base_index=history["base_index"],
                    archive_id=int(archive_id),
                    kind=kind,
                    depth=int(lineage_depth) + 1,
                    answer=task["answer"],
                    data_source=task["data_source"],
                    previous_attempt=history["attempt"],
                )
            )
        self._last.update(
            replay_fraction=float(replay.mean()) if n else 0.0,
            diverge_fraction=float(sum(b.kind == "diverge" for b in batch) / n) if n else 0.0,
            depth_mean=float(np.mean([b.depth for b in batch])) if n else 0.0,
            depth_max=float(max((b.depth for b in batch), default=0)),
        )
        return batch

    # -- feedback -------------------------------------------------------------------------

    def _check_observation(
        self, batch: Sequence[TaskInstance], responses: Sequence[Sequence[str]], rewards: Any
    ) -> tuple[np.ndarray, int]:
        n = len(batch)
        if len(responses) != n:
            raise ValueError(f"got {len(responses)} response groups for {n} task instances")
        r = np.asarray(rewards, dtype=np.float64)
        if r.ndim != 2 or r.shape[0] != n:
            raise ValueError(f"rewards must have shape ({n}, G), got {r.shape}")
        g = r.shape[1]
        if g < 1:
            raise ValueError("each group needs at least one response")
        if not np.isfinite(r).all():
            raise ValueError("rewards must be finite")
        for i, (inst, group) in enumerate(zip(batch, responses, strict=True)):
            if not isinstance(inst, TaskInstance):
                raise ValueError(f"batch[{i}] is not a TaskInstance")
            if inst.kind not in KINDS:
                raise ValueError(f"batch[{i}] has unknown kind {inst.kind!r}")
            if (inst.kind == "base") != (inst.archive_id is None):
                raise ValueError(f"batch[{i}]: only replayed instances carry an archive_id")
            if not 0 <= inst.base_index < len(self.tasks):
                raise ValueError(f"batch[{i}] refers to base task {inst.base_index}")
            if isinstance(group, str) or len(group) != g:
                raise ValueError(f"responses[{i}] must be a list of {g} strings")
            if not all(isinstance(x, str) for x in group):
                raise ValueError(f"responses[{i}] must contain strings")
        return r, g

    def observe(
        self,
        batch: Sequence[TaskInstance],
        responses: Sequence[Sequence[str]],
        rewards: Any,
        step: int,
    ) -> np.ndarray:
        """Learnability → archive scores, informative groups → children; returns shaped rewards.

        `responses` holds n groups of G strings and `rewards` the (n, G) raw task rewards.
        Learnability always uses the raw rewards; the diversity bonus only shapes the output.
        """
        raw, g = self._check_observation(batch, responses, rewards)
        c = self.config
        n = len(batch)
        learn = np.array([self.learnability_fn(raw[i]) for i in range(n)])
        emb = None
        if c.diversity_bonus != "none" or self._uses_archive_embeddings():
            assert self.embedder is not None
            flat = [text for group in responses for text in group]
            emb = self.embedder(flat).reshape(n, g, -1) if flat else None
        shaped = raw.copy()
        spread_mean = 0.0
        if emb is not None and c.diversity_bonus in ("knn", "both"):
            novelty = self.archive.novelty(emb.reshape(n * g, -1), k=c.novelty_k).reshape(n, g)
            for i in range(n):
                shaped[i] = knn_bonus(shaped[i], novelty[i], c.diversity_coef)
                spread_mean += float(range_normalize(novelty[i]).mean()) / n
        if emb is not None and c.diversity_bonus in ("centroid", "both"):
            for i in range(n):
                shaped[i] = centroid_bonus(shaped[i], emb[i], c.diversity_coef)

        replayed = [
            (b.archive_id, learn[i]) for i, b in enumerate(batch) if b.archive_id is not None
        ]
        live = [(a, s) for a, s in replayed if a in self.archive]
        if live:
            ids, scores = zip(*live, strict=True)
            self.archive.update_scores(list(ids), list(scores))

        payloads: list[bytes] = []
        scores_out: list[float] = []
        parents: list[int] = []
        rows: list[np.ndarray] = []
        for i, inst in enumerate(batch):
            if learn[i] <= c.min_child_learnability or inst.depth + 1 > c.max_depth:
                continue
            order = np.argsort(-raw[i], kind="stable")
            keep = order if c.children_per_group == 0 else order[: c.children_per_group]
            # Evicted parents are fine: the archive keeps their lineage.
            parent = -1 if inst.archive_id is None else inst.archive_id
            for j in keep:
                payloads.append(
                    json.dumps(
                        {
                            "base_index": inst.base_index,
                            "attempt": responses[i][j],
                            "kind": inst.kind,
                        },
                        ensure_ascii=False,
                    ).encode()
                )
                scores_out.append(float(learn[i]))
                parents.append(parent)
                if emb is not None and self._uses_archive_embeddings():
                    rows.append(emb[i, j])
        added = 0
        if payloads:
            embeddings = np.stack(rows) if rows else None
            added = len(
                self.archive.add(
                    payloads, scores_out, parents=parents, embeddings=embeddings, step=step
                )
            )
        self._last.update(
            learnability_mean=float(learn.mean()) if n else 0.0,
            informative_fraction=float((learn > c.min_child_learnability).mean()) if n else 0.0,
            children_added=float(added),
            bonus_mean=float(np.mean(shaped - raw)) if raw.size else 0.0,
            reward_mean=float(raw.mean()) if raw.size else 0.0,
            novelty_spread_mean=spread_mean,
        )
        return shaped

    # -- monitoring and persistence -------------------------------------------------------

    def metrics(self) -> dict[str, float]:
        """Flat metrics of the last batch/observe and the archive (prefix them for a tracker)."""
        stats = self.archive.stats()
        out = {
            "archive_size": float(stats["size"]),
            "archive_evicted": float(stats["evicted"]),
            "archive_depth_max": float(stats["depth_max"]),
            "archive_score_mean": float(stats["score_mean"]) if stats["size"] else 0.0,
            "epoch": float(self._epoch),
        }
        out.update(self._last)
        return out

    def state_dict(self, include_archive: bool = True) -> dict[str, Any]:
        """Everything needed to continue exactly: archive snapshot, RNG and dataset cursor.

        `include_archive=False` leaves out the snapshot bytes, for callers that save the
        archive as its own file (`archive.save`) and put the bytes back before loading."""
        state = {
            "version": STATE_VERSION,
            "config": self.config.to_dict(),
            "seed": self.seed,
            "num_tasks": len(self.tasks),
            "rng": self._rng.bit_generator.state,
            "epoch": self._epoch,
            "cursor": self._cursor,
            "last_metrics": dict(self._last),
        }
        if include_archive:
            state["archive"] = self.archive.to_bytes()
        return state

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        if state.get("version") != STATE_VERSION:
            raise ValueError(f"unsupported curriculum state version {state.get('version')!r}")
        if state.get("num_tasks") != len(self.tasks):
            raise ValueError(
                f"state was saved with {state.get('num_tasks')} base tasks, this curriculum has "
                f"{len(self.tasks)}"
            )
        archive = TaskArchive.from_bytes(state["archive"])
        rng = np.random.default_rng()
        rng.bit_generator.state = state["rng"]
        self.seed = int(state["seed"])
        self.archive = archive
        self._rng = rng
        self._epoch = int(state["epoch"])
        self._cursor = int(state["cursor"])
        self._order = self._epoch_order(self._epoch)
        self._last = dict(state.get("last_metrics", {}))
