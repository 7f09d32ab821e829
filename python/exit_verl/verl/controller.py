"""`ExItController`: the ExIt curriculum in verl's terms, living in verl's trainer process.

Data flow of one training step:
  `next_batch_dict`  curriculum prompts as verl's collated dataloader batch: the dataset item
                     of each base task, `raw_prompt` replaced by the improve / diverge prompt
                     (fitted to the token budget), a `uid` per prompt remembered until its
                     group is observed.
  `observe`          rows of groups (verl's TransferQueue rows, `rows.Rows`) go through the
                     curriculum's `observe` (with each row's reward `feedback`, e.g. an error
                     trace, kept with its attempt); returns each sample's training reward and
                     advantage scale, keyed by (uid, session).
  `lost`             prompts verl removed without any row (every session failed).
  `step_metrics`     the `exit/` metrics of one verl step.
Groups are tracked per uid, not per step: a prompt stays pending from the moment it is
issued until its rows are observed (trained, or dropped by verl's replay buffer) or verl
removes it without rows, whichever verl step that happens in (several local updates per step
with `parameter_sync_step`, groups finishing steps later in the async modes).
It runs in the trainer (driver) process, never in dataloader workers: workers are forked
copies and would read a stale archive.
"""

from __future__ import annotations

import copy
import hashlib
import json
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from exit_verl.archive import TaskArchive
from exit_verl.config import ExItConfig
from exit_verl.curriculum import ExItCurriculum
from exit_verl.durable import write_atomic
from exit_verl.verl.checkpoint_layout import ARCHIVE_FILE, STATE_FILE
from exit_verl.verl.prompt_budget import PromptBudget
from exit_verl.verl.rows import Rows
from exit_verl.verl.step_stats import StepStats
from exit_verl.verl.timed_embedder import TimedEmbedder

STATE_VERSION = 4
# Version 3 (written before prompts in flight were saved) came from the sync mode only, where
# nothing is in flight at a save: it reads as version 4 with no pending prompts.
PENDING_SINCE = 4
MEDIA_KEYS = ("image_key", "video_key", "audio_key")


def base_tasks_from_dataset(dataset: Any, prompt_key: str) -> list[dict[str, Any]]:
    """Base tasks from verl's RLHFDataset (`row` indexes back into the dataset).

    ExIt's improve / diverge prompts are text, so datasets with images, videos or audio are
    refused here rather than having their media silently dropped from iteration prompts.
    """
    frame = getattr(dataset, "dataframe", None)
    if frame is None:
        raise ValueError("ExIt reads its base tasks from verl's RLHFDataset (data.custom_cls)")
    columns = set(frame.column_names)
    for attr in MEDIA_KEYS:
        key = getattr(dataset, attr, None)
        if key in columns and any(v for v in frame[key]):
            raise ValueError(
                f"ExIt supports text datasets only: column {key!r} holds media, which "
                "improve/diverge prompts cannot carry"
            )
    if prompt_key not in columns:
        raise ValueError(f"data.prompt_key={prompt_key!r} is not a column of the dataset")
    prompts = frame[prompt_key]
    reward_models = frame["reward_model"] if "reward_model" in columns else [None] * len(frame)
    sources = frame["data_source"] if "data_source" in columns else [""] * len(frame)
    tasks = []
    for i, (prompt, reward_model, source) in enumerate(
        zip(prompts, reward_models, sources, strict=True)
    ):
        if isinstance(prompt, str) or not all(isinstance(m.get("content"), str) for m in prompt):
            raise ValueError(
                f"row {i}: ExIt needs chat prompts with text content in {prompt_key!r}"
            )
        tasks.append(
            {
                "prompt": [dict(m) for m in prompt],
                "answer": (reward_model or {}).get("ground_truth"),
                "id": str(i),
                "data_source": source or "",
                "row": i,
            }
        )
    return tasks


def row_tools(extra_info: Mapping[str, Any]) -> list[dict[str, Any]] | None:
    """A row's tool schemas (`extra_info["tools"]`, JSON), rendered by its agent loop."""
    tools = extra_info.get("tools")
    return json.loads(tools) if isinstance(tools, str) and tools else None


class ExItController:
    """Batches from the curriculum, groups observed by it, state for verl's checkpoints."""

    def __init__(
        self,
        config: ExItConfig,
        dataset: Any,
        prompt_key: str,
        budget: PromptBudget | None,
        seed: int = 0,
        embed_threads: int | None = None,
        embed_device: str = "auto",
        embedder_download: bool = False,
    ) -> None:
        self.dataset = dataset
        self.budget = budget
        self.embedder = TimedEmbedder(
            config.embedder,
            embed_threads,
            device=embed_device,
            allow_download=embedder_download,
        )
        self.curriculum = ExItCurriculum(
            config,
            base_tasks_from_dataset(dataset, prompt_key),
            embedder=self.embedder,
            seed=seed,
        )
        # uid -> (task instance, step it was issued at), in issue order, until observed.
        self.pending: dict[str, tuple[Any, int]] = {}
        self._uid_counter = 0
        self.stats = StepStats()
        self.timing: dict[str, float] = {}

    # -- prompts ------------------------------------------------------------------------------

    def _new_uid(self, step: int) -> str:
        # verl splits keys on "_", so a uid must not contain one.
        self._uid_counter += 1
        return f"exit-{step}-{self._uid_counter}"

    def _fitted_prompt(self, inst: Any, tools: Any) -> tuple[list[dict[str, Any]], bool, bool]:
        """(messages, clipped, fits) of an instance within the token budget (with the row's
        tool schemas, which the agent loop renders into the prompt)."""
        if self.budget is None or inst.kind == "base" or inst.previous_attempt is None:
            return [dict(m) for m in inst.prompt], False, True
        fitted = self.budget.fit(
            lambda attempt: inst.render(self.curriculum.templates, attempt),
            inst.previous_attempt,
            tools,
        )
        return fitted.messages, fitted.clipped, fitted.fits

    def next_batch_dict(self, n: int, step: int) -> dict[str, Any]:
        """`n` prompts as verl's `collate_fn` output plus `uid`, remembered until observed."""
        from verl.utils.dataset.rl_dataset import collate_fn

        instances = self.curriculum.next_batch(n, step)
        items, uids = [], []
        clipped = over_budget = 0
        for inst in instances:
            item = copy.deepcopy(self.dataset[inst.base_index])
            extra = dict(item.get("extra_info") or {})
            messages, was_clipped, fits = self._fitted_prompt(inst, row_tools(extra))
            clipped += was_clipped
            over_budget += not fits
            item["raw_prompt"] = messages
            extra.update(
                exit_kind=inst.kind, exit_depth=inst.depth, exit_archive_id=inst.archive_id
            )
            if inst.kind != "base" and inst.history is not None:
                # Agent loops that replay an environment read the archived partial history.
                extra["exit_history"] = inst.history.to_bytes().decode()
            item["extra_info"] = extra
            uid = self._new_uid(step)
            self.pending[uid] = (inst, step)
            items.append(item)
            uids.append(uid)
        self.stats.on_issue(instances, clipped, over_budget)
        batch = collate_fn(items)
        batch["uid"] = np.array(uids, dtype=object)
        return batch

    # -- feedback -----------------------------------------------------------------------------

    def observe(
        self, rows: Rows, step: int, trained: bool, reason: str | None = None
    ) -> dict[tuple[str, int], tuple[float, float]]:
        """Observes the groups in `rows` this controller issued; other rows are ignored.

        A group is one prompt's sessions, each represented by its last output (as verl's
        GRPO advantage does); groups are observed in issue order, sessions in session order,
        so the archive evolves the same whatever order verl's rows arrive in. Groups that
        lost sessions (failed agent loops) are observed in their own call per group size.
        `trained` is False for groups verl's replay buffer dropped, `reason` says why.
        Returns (uid, session) -> (training reward, advantage scale).
        """
        start = time.perf_counter()
        try:
            return self._observe(rows, step, trained, reason)
        finally:
            self.stats.observe_seconds += time.perf_counter() - start

    def _observe(
        self, rows: Rows, step: int, trained: bool, reason: str | None
    ) -> dict[tuple[str, int], tuple[float, float]]:
        finals = rows.session_finals()
        groups: dict[str, list[tuple[int, int]]] = {}
        for (uid, session), row in finals.items():
            if uid in self.pending:
                groups.setdefault(uid, []).append((session, row))
        if not groups:
            return {}
        outcome = rows.outcome
        order = [uid for uid in self.pending if uid in groups]  # issue order
        out: dict[tuple[str, int], tuple[float, float]] = {}
        for size in sorted({len(g) for g in groups.values()}, reverse=True):
            uids = [uid for uid in order if len(groups[uid]) == size]
            members = [sorted(groups[uid]) for uid in uids]
            rows_of = np.array([[row for _, row in m] for m in members])  # (n, size)
            task_rewards = outcome[rows_of]
            feedback = self.curriculum.observe(
                [self.pending[uid][0] for uid in uids],
                [[rows.rollout(r) for r in group] for group in rows_of],
                task_rewards,
                step,
                feedback=[[rows.feedback(r) for r in group] for group in rows_of],
            )
            train, scale = feedback.rewards, feedback.advantage_scale
            staleness = [step - self.pending[uid][1] for uid in uids]
            self.stats.on_observe(
                task_rewards,
                train,
                scale,
                self.curriculum.metrics(),
                trained=trained,
                reason=reason,
                staleness=staleness,
            )
            for i, (uid, member) in enumerate(zip(uids, members, strict=True)):
                for j, (session, _) in enumerate(member):
                    out[(uid, session)] = (float(train[i, j]), float(scale[i, j]))
                del self.pending[uid]
        return out

    def lost(self, uids: set[str]) -> int:
        """Forgets issued prompts verl removed without a single row (every session failed);
        how many of `uids` were pending."""
        gone = [uid for uid in uids if uid in self.pending]
        for uid in gone:
            del self.pending[uid]
        self.stats.groups_lost += len(gone)
        return len(gone)

    def step_metrics(self) -> dict[str, float]:
        """The `exit/` metrics of the verl step that just ended, and its time: seconds
        observing and (part of them) embedding, under `timing` (the trainer reports them as
        `timing_s/exit_*`). Prompts still in flight stay pending (`exit/groups_pending`)."""
        seconds, texts = self.embedder.take_counters()
        metrics = self.stats.metrics(self.curriculum.metrics())
        metrics["exit/embed_texts"] = float(texts)
        metrics["exit/groups_pending"] = float(len(self.pending))
        self.timing = {"exit_observe": self.stats.observe_seconds, "exit_embed": seconds}
        self.stats = StepStats()
        return metrics

    # -- checkpoints --------------------------------------------------------------------------

    def save(self, folder: str | Path, step: int) -> None:
        """Writes exit_archive.snap, then exit_state.json (which names the archive's checksum,
        its next id and `step`, and holds the prompts still in flight), each atomically, into
        a verl checkpoint folder."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        archive = self.curriculum.archive.to_bytes()
        write_atomic(folder / ARCHIVE_FILE, archive)
        state = {
            "version": STATE_VERSION,
            "step": int(step),
            "archive": {
                "sha256": hashlib.sha256(archive).hexdigest(),
                "bytes": len(archive),
                "next_id": int(self.curriculum.archive.stats()["next_id"]),
            },
            "curriculum": self.curriculum.state_dict(include_archive=False),
            "uid_counter": self._uid_counter,
            # Issued prompts whose groups are not yet observed (verl's async modes checkpoint
            # them in TransferQueue): in issue order, each with its task instance.
            "pending": [
                {"uid": uid, "issued": issued, "instance": inst.state()}
                for uid, (inst, issued) in self.pending.items()
            ],
        }
        write_atomic(folder / STATE_FILE, json.dumps(state).encode())

    def load(self, folder: str | Path, step: int) -> list[str]:
        """Restores the state saved at `step` in a checkpoint folder. Everything is read and
        checked first (state version and step, archive checksum and next id, base tasks,
        archive settings, prompts in flight); a mismatch raises ValueError naming it and
        changes nothing.
        FileNotFoundError when the folder holds no ExIt state. Returns the settings that
        changed since the save (see `ExItCurriculum.load_state_dict`)."""
        folder = Path(folder)
        state = read_state(folder)
        if state["step"] != step:
            raise ValueError(
                f"{folder / STATE_FILE} was written at step {state['step']}, but verl resumes "
                f"step {step} from this folder: the checkpoint mixes two saves"
            )
        archive = (folder / ARCHIVE_FILE).read_bytes()
        expected = state["archive"]
        if (len(archive), hashlib.sha256(archive).hexdigest()) != (
            expected["bytes"],
            expected["sha256"],
        ):
            raise ValueError(
                f"{folder / ARCHIVE_FILE} is not the archive {STATE_FILE} was saved with "
                "(checksum differs): the checkpoint mixes two saves"
            )
        uid_counter = state["uid_counter"]
        if isinstance(uid_counter, bool) or not isinstance(uid_counter, int) or uid_counter < 0:
            raise ValueError(f"{folder / STATE_FILE}: uid_counter must be a count")
        snapshot = TaskArchive.from_bytes(archive)
        if snapshot.stats()["next_id"] != expected["next_id"]:
            raise ValueError(
                f"{folder / STATE_FILE} records next id {expected['next_id']}, its archive has "
                f"{snapshot.stats()['next_id']}"
            )
        pending = self._parse_pending(state["pending"], step, folder / STATE_FILE)
        changed = self.curriculum.load_state_dict({**state["curriculum"], "archive": snapshot})
        self._uid_counter = uid_counter
        self.pending = pending
        self.stats = StepStats()
        return changed

    def _parse_pending(self, records: Any, step: int, path: Path) -> dict[str, tuple[Any, int]]:
        if not isinstance(records, list):
            raise ValueError(f"{path}: 'pending' must be a list")
        pending: dict[str, tuple[Any, int]] = {}
        for record in records:
            if not isinstance(record, dict) or set(record) != {"uid", "issued", "instance"}:
                raise ValueError(f"{path}: malformed pending prompt {record!r}")
            uid, issued = record["uid"], record["issued"]
            if not isinstance(uid, str) or "_" in uid or uid in pending:
                raise ValueError(f"{path}: pending uid {uid!r} is malformed or repeated")
            if isinstance(issued, bool) or not isinstance(issued, int) or not 0 <= issued <= step:
                raise ValueError(f"{path}: pending prompt {uid} issued at step {issued!r}")
            try:
                pending[uid] = (self.curriculum.restore_instance(record["instance"]), issued)
            except ValueError as e:
                raise ValueError(f"{path}: pending prompt {uid}: {e}") from None
        return pending


def read_state(folder: Path) -> dict[str, Any]:
    """exit_state.json of a checkpoint folder, with its structure checked."""
    path = folder / STATE_FILE
    if not path.is_file():
        raise FileNotFoundError(
            f"{folder} holds no ExIt state ({STATE_FILE}): was it written by a run with "
            "trainer.v1.trainer_mode=exit?"
        )
    try:
        state = json.loads(path.read_bytes())
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"{path} is not valid JSON: {e}") from None
    version = state.get("version") if isinstance(state, dict) else None
    if version not in (PENDING_SINCE - 1, STATE_VERSION):
        raise ValueError(f"{path}: unsupported ExIt state version {version!r}")
    if version < PENDING_SINCE:
        state = {**state, "pending": []}
    missing = sorted({"step", "archive", "curriculum", "uid_counter", "pending"} - set(state))
    if missing:
        raise ValueError(f"{path} lacks {missing}")
    archive = state["archive"]
    if (
        not isinstance(state["step"], int)
        or not isinstance(archive, dict)
        or not isinstance(archive.get("sha256"), str)
        or not isinstance(archive.get("bytes"), int)
        or not isinstance(archive.get("next_id"), int)
        or not isinstance(state["curriculum"], dict)
    ):
        raise ValueError(f"{path} is malformed (step, archive checksum or curriculum state)")
    return state
