"""`ExItController`: the ExIt curriculum in verl's terms, living in the trainer process.

It turns verl's training dataset (an `RLHFDataset` over the usual parquet files: `prompt`
chat messages, `data_source`, `reward_model.ground_truth`) into base tasks, builds each
training batch from `ExItCurriculum.next_batch` as verl's own collated batch dict (the
dataset's item for the base task, with `raw_prompt` replaced by the improve / diverge prompt,
so the agent loop applies the chat template exactly as usual), and shapes verl's rewards
(`DataProto` with `uid`, `responses`, `response_mask` and token-level scores) with `observe`.

It runs in the trainer (driver) process, never in dataloader workers: workers are forked
copies and would read a stale archive.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from exit_verl.config import ExItConfig
from exit_verl.curriculum import ExItCurriculum, TaskInstance

STATE_FILE = "exit_state.json"
ARCHIVE_FILE = "exit_archive.snap"
# verl's estimators that compare the G responses of one prompt (grouped by uid).
SUPPORTED_ESTIMATORS = (
    "grpo",
    "grpo_vectorized",
    "grpo_passk",
    "rloo",
    "rloo_vectorized",
    "reinforce_plus_plus_baseline",
    "opo",
)
# Prompts never observed (e.g. whole groups dropped by a group filter) are forgotten after
# this many steps, so `pending` stays bounded.
PENDING_STEPS = 2


def exit_config_from(node: Mapping[str, Any]) -> ExItConfig:
    """ExItConfig from the `exit` config group (its `enable` flag and extras dropped)."""
    from omegaconf import DictConfig, OmegaConf

    values = OmegaConf.to_container(node, resolve=True) if isinstance(node, DictConfig) else node
    values = {k: v for k, v in dict(values).items() if k not in ("enable", "val_iterations")}
    return ExItConfig.from_dict(values)


def base_tasks_from_dataset(dataset: Any, prompt_key: str = "prompt") -> list[dict[str, Any]]:
    """Base tasks from verl's RLHFDataset rows (`row` indexes back into the dataset)."""
    frame = dataset.dataframe
    tasks = []
    for i in range(len(frame)):
        row = frame[i]
        reward_model = row.get("reward_model") or {}
        tasks.append(
            {
                "prompt": row[prompt_key],
                "answer": reward_model.get("ground_truth"),
                "id": str(i),
                "data_source": row.get("data_source", ""),
                "row": i,
            }
        )
    return tasks


def final_rows(uids: list[str], keys: list[str] | None) -> list[int]:
    """Rows that represent a sample: all rows, or per `{uid}_{session}` its last output."""
    if keys is None:
        return list(range(len(uids)))
    if len(keys) != len(uids):
        raise ValueError(f"{len(keys)} keys for {len(uids)} rows")
    last: dict[str, tuple[int, int]] = {}
    for row, key in enumerate(keys):
        parts = key.rsplit("_", 2)
        if len(parts) != 3 or not parts[2].isdigit():
            raise ValueError(f"expected a key '{{uid}}_{{session}}_{{output}}', got {key!r}")
        session, output = f"{parts[0]}_{parts[1]}", int(parts[2])
        if session not in last or last[session][0] < output:
            last[session] = (output, row)
    return sorted(row for _, row in last.values())


class ExItController:
    """Batches from the curriculum, rewards shaped by it, state for verl's checkpoints."""

    def __init__(
        self,
        config: ExItConfig,
        dataset: Any,
        tokenizer: Any,
        seed: int = 0,
        embedder: Any = None,
        prompt_key: str = "prompt",
    ) -> None:
        self.dataset = dataset
        self.tokenizer = tokenizer
        self.curriculum = ExItCurriculum(
            config, base_tasks_from_dataset(dataset, prompt_key), embedder=embedder, seed=seed
        )
        # uid -> (task instance, step it was issued at), until its group is observed.
        self.pending: dict[str, tuple[TaskInstance, int]] = {}
        self._uid_counter = 0

    # -- prompts ------------------------------------------------------------------------------

    def _new_uid(self, step: int) -> str:
        self._uid_counter += 1
        return f"exit-{step}-{self._uid_counter}"

    def next_batch_dict(self, n: int, step: int) -> dict[str, Any]:
        """`n` prompts as verl's collate_fn output (plus `uid`), remembered until observed."""
        from verl.utils.dataset.rl_dataset import collate_fn

        instances = self.curriculum.next_batch(n, step)
        items, uids = [], []
        for inst in instances:
            item = copy.deepcopy(self.dataset[inst.base_index])
            item["raw_prompt"] = [dict(m) for m in inst.prompt]
            extra = dict(item.get("extra_info") or {})
            extra.update(
                exit_kind=inst.kind, exit_depth=inst.depth, exit_archive_id=inst.archive_id
            )
            item["extra_info"] = extra
            uid = self._new_uid(step)
            self.pending[uid] = (inst, step)
            items.append(item)
            uids.append(uid)
        batch = collate_fn(items)
        batch["uid"] = np.array(uids, dtype=object)
        return batch

    # -- rewards ------------------------------------------------------------------------------

    def shape_rewards(
        self,
        data: Any,
        step: int,
        keys: list[str] | None = None,
        score_key: str = "rm_scores",
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """Observes one step's groups and returns the shaped token-level scores.

        `data` is a DataProto with `uid` (non-tensor), `responses`, `response_mask` and
        `score_key` (token-level, the outcome on the last response token as verl's reward
        loop writes it). Rows whose uid this controller did not issue (e.g. validation) keep
        their scores. A group is one prompt's rollout.n samples; `keys` are verl's
        TransferQueue keys (`{uid}_{session}_{output}`): when an agent loop emits several
        outputs per sample, only each sample's final output counts, as in verl's advantage.
        """
        uids = [str(u) for u in data.non_tensor_batch["uid"]]
        scores = data.batch[score_key].float()
        mask = data.batch["response_mask"].bool()
        raw = (scores * mask).sum(dim=1)
        groups: dict[str, list[int]] = {}
        for row in final_rows(uids, keys):
            if uids[row] in self.pending:
                groups.setdefault(uids[row], []).append(row)
        shaped_scores = scores.clone()
        if not groups:
            return shaped_scores, {}
        texts = self.tokenizer.batch_decode(
            data.batch["responses"].masked_fill(~mask, self.tokenizer.pad_token_id or 0),
            skip_special_tokens=True,
        )
        raw_np = raw.cpu().numpy().astype(np.float64)
        # Move each difference onto the last response token, where the outcome reward sits.
        last = mask.long().cumsum(dim=1).argmax(dim=1).cpu().numpy()
        order = list(groups)
        # observe takes (n, G) arrays: groups that lost samples (e.g. an agent loop returned
        # nothing) are observed in their own call, per group size.
        for size in sorted({len(rows) for rows in groups.values()}, reverse=True):
            uids_of_size = [u for u in order if len(groups[u]) == size]
            rows = np.array([groups[u] for u in uids_of_size])  # (n, size)
            shaped = self.curriculum.observe(
                [self.pending[u][0] for u in uids_of_size],
                [[texts[r] for r in group] for group in rows],
                raw_np[rows],
                step,
            ).rewards
            for i, group in enumerate(rows):
                for j, r in enumerate(group):
                    shaped_scores[r, last[r]] += float(shaped[i, j] - raw_np[r])
        for u in order:
            del self.pending[u]
        self._forget_stale(step)
        return shaped_scores, self.metrics()

    def _forget_stale(self, step: int) -> None:
        for uid in [u for u, (_, s) in self.pending.items() if s < step - PENDING_STEPS]:
            del self.pending[uid]

    def metrics(self) -> dict[str, float]:
        return {f"exit/{k}": float(v) for k, v in self.curriculum.metrics().items()}

    # -- checkpoints --------------------------------------------------------------------------

    def save(self, folder: str | Path) -> None:
        """Writes exit_archive.snap and exit_state.json into a verl checkpoint folder."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        state = self.curriculum.state_dict(include_archive=False)
        self.curriculum.archive.save(folder / ARCHIVE_FILE)  # its own crash-safe file
        state["uid_counter"] = self._uid_counter
        tmp = folder / (STATE_FILE + ".tmp")
        tmp.write_text(json.dumps(state))
        tmp.replace(folder / STATE_FILE)

    def load(self, folder: str | Path) -> bool:
        """Restores from a checkpoint folder; False when it holds no ExIt state."""
        folder = Path(folder)
        if not (folder / STATE_FILE).is_file():
            return False
        state = json.loads((folder / STATE_FILE).read_text())
        state["archive"] = (folder / ARCHIVE_FILE).read_bytes()
        self._uid_counter = int(state.pop("uid_counter", 0))
        self.curriculum.load_state_dict(state)
        self.pending.clear()
        return True
