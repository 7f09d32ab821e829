"""verl's replay buffers, telling ExIt about every group they remove before it is gone.

verl's buffers remove finished groups from TransferQueue in two places:

- `_clear_groups`: groups evicted without training (`_evict_terminal_groups`: all-equal
  groups under `algorithm.filter_groups`, "filtered"; in the async buffer also groups past
  the off-policy limit, "stale", and groups with a failed session, "failed"), and surplus
  groups the sync filter discards once it has enough ("surplus");
- `_materialize_batch`: the groups it hands to training; one whose every session failed has
  no rows, so ExIt would never see it.

Dropped groups are informative for ExIt: an archived entry that became always solved must
lose its score, or it keeps being replayed (and filtered) on its stale one. So these
subclasses hand the rows of dropped groups to `on_dropped` (with each group's reason) and the
uids of row-less groups to `on_lost`, then let verl's code remove them exactly as it would.
`adopt` turns the buffer verl's `_build_replay_buffer` built (sync or async) into the
matching subclass, so verl keeps choosing every constructor argument.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from verl.trainer.ppo.v1.replay_buffer import ReplayBuffer, ReplayBufferAsync

# (partition_id, trajectory keys, uids, uid -> reason)
OnDropped = Callable[[str, list[str], set[str], dict[str, str]], None]
OnLost = Callable[[set[str]], None]
TRAIN = "train"


class DropReporting:
    """The reporting half, mixed in before verl's buffer class."""

    on_dropped: OnDropped | None = None
    on_lost: OnLost | None = None
    _reasons: dict[str, str] | None = None

    def _evict_terminal_groups(self, global_steps, partition_id, eviction_reasons):  # noqa: ANN001
        stale, filtered, failed, _counts = eviction_reasons
        # verl clears the union once; a group in several sets gets the strongest reason.
        reasons = {uid: "filtered" for uid in filtered}
        reasons.update({uid: "stale" for uid in stale})
        reasons.update({uid: "failed" for uid in failed})
        self._reasons = reasons
        try:
            return super()._evict_terminal_groups(global_steps, partition_id, eviction_reasons)
        finally:
            self._reasons = None

    def _clear_groups(self, partition_id: str, uids: set[str]) -> None:
        if uids and partition_id == TRAIN and self.on_dropped is not None:
            # The same rows verl's _clear_groups selects: trajectory keys of these prompts.
            keys = [key for key in self.partitions[partition_id] if key.split("_")[0] in uids]
            known = self._reasons or {}
            reasons = {uid: known.get(uid, "surplus") for uid in uids}
            self.on_dropped(partition_id, keys, set(uids), reasons)
        super()._clear_groups(partition_id, uids)

    def _materialize_batch(self, partition_id, selected_prompt_uids, partition_snapshot):  # noqa: ANN001
        batch = super()._materialize_batch(partition_id, selected_prompt_uids, partition_snapshot)
        if partition_id == TRAIN and self.on_lost is not None:
            with_rows = {key.split("_")[0] for key in batch.keys}
            empty = set(selected_prompt_uids) - with_rows
            if empty:
                self.on_lost(empty)
        return batch


class ExItReplayBuffer(DropReporting, ReplayBuffer):
    """verl's sync `ReplayBuffer`, reporting what it removes."""


class ExItReplayBufferAsync(DropReporting, ReplayBufferAsync):
    """verl's `ReplayBufferAsync` (stale, filtered and failed evictions), reporting them."""


ADOPTED: dict[type, type] = {
    ReplayBuffer: ExItReplayBuffer,
    ReplayBufferAsync: ExItReplayBufferAsync,
}


def adopt(buffer: Any, on_dropped: OnDropped, on_lost: OnLost) -> DropReporting:
    """The reporting subclass over the state of a buffer verl built."""
    cls = ADOPTED.get(type(buffer))
    if cls is None:
        raise TypeError(
            f"expected verl's ReplayBuffer or ReplayBufferAsync, got {type(buffer).__name__}"
        )
    adopted = cls.__new__(cls)
    adopted.__dict__.update(buffer.__dict__)
    adopted.on_dropped = on_dropped
    adopted.on_lost = on_lost
    return adopted
