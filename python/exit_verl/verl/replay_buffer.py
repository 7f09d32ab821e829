"""verl's sync `ReplayBuffer`, telling ExIt about the groups it drops before they are cleared.

With `algorithm.filter_groups` (dynamic sampling) verl's replay buffer evicts finished groups
whose rewards are all equal, and discards surplus groups once it has enough, before the
advantage step ever sees them (`ReplayBuffer.sample` → `_clear_groups`). Those groups are
informative for ExIt: an archived entry that became always solved must lose its score, or it
keeps being replayed (and filtered) on its stale one. `_clear_groups` is the single place
verl removes groups from TransferQueue, so this subclass hands the rows there to a callback
first, then clears them exactly as verl does.
"""

from __future__ import annotations

from collections.abc import Callable

from verl.trainer.ppo.v1.replay_buffer import ReplayBuffer

OnDropped = Callable[[str, list[str], set[str]], None]


class ExItReplayBuffer(ReplayBuffer):
    on_dropped: OnDropped | None = None

    @classmethod
    def adopt(cls, buffer: ReplayBuffer, on_dropped: OnDropped) -> ExItReplayBuffer:
        """This class over the state of a `ReplayBuffer` verl built (so verl's own
        `_build_replay_buffer` keeps choosing every constructor argument)."""
        if type(buffer) is not ReplayBuffer:
            raise TypeError(f"expected verl's sync ReplayBuffer, got {type(buffer).__name__}")
        adopted = cls.__new__(cls)
        adopted.__dict__.update(buffer.__dict__)
        adopted.on_dropped = on_dropped
        return adopted

    def _clear_groups(self, partition_id: str, uids: set[str]) -> None:
        if uids and partition_id == "train" and self.on_dropped is not None:
            # The same rows verl's _clear_groups selects: trajectory keys of these prompts.
            keys = [key for key in self.partitions[partition_id] if key.split("_")[0] in uids]
            self.on_dropped(partition_id, keys, set(uids))
        super()._clear_groups(partition_id, uids)
