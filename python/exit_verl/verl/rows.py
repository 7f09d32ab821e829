"""verl's rollout rows in TransferQueue, read and written the way verl's own code does.

verl's agent loop stores one row per agent-loop output under the key
`{uid}_{session}_{output}` (`AgentLoopWorkerTQ._agent_loop_postprocess`): `uid` is the prompt,
`session` one of its rollout.n samples, `output` the index of an output when a custom agent
loop returns several. The outcome reward sits on the LAST token of `rm_scores`
(`AgentLoopOutput.as_dict`), whatever that token's response-mask value (a multi-turn row may
end in a tool observation with mask 0), and every estimator reads it back as the unmasked sum
`token_level_rewards.sum(-1)` (verl.trainer.ppo.core_algos). Rows are read and written here with
those same rules; `Rows.outcome` is that sum.

Each row also carries verl's `extra_fields` (the agent loop's `AgentLoopOutput.extra_fields`);
the reward loop stores a reward function's dict output there as `reward_extra_info`. Two of its
keys matter to ExIt: `TURNS_KEY`, the session's turns in structured form (the tool-use agent
loop writes them; `Rows.rollout` then gives those turns instead of the decoded text), and
`FEEDBACK_KEY`, a text such as an error trace that ExIt keeps with the attempt (`Rows.feedback`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

FIELDS = ["uid", "responses", "rm_scores", "extra_fields"]
# Where an agent loop hands the trainer a session's turns (`exit_verl.history.turns_to_json`).
TURNS_KEY = "exit_turns"
FEEDBACK_KEY = "feedback"  # the key of a reward function's dict output ExIt keeps


def parse_key(key: str) -> tuple[str, int, int]:
    """(uid, session, output) of a verl row key `{uid}_{session}_{output}`."""
    parts = key.rsplit("_", 2)
    if len(parts) != 3 or not parts[1].isdigit() or not parts[2].isdigit():
        raise ValueError(f"expected a verl row key '{{uid}}_{{session}}_{{output}}', got {key!r}")
    return parts[0], int(parts[1]), int(parts[2])


@dataclass
class Rows:
    """Rows of one TransferQueue partition; per-row lists in `keys` order."""

    partition_id: str
    keys: list[str]
    uids: list[str]
    sessions: list[int]
    outputs: list[int]
    texts: list[str]
    scores: list[torch.Tensor]  # each row's token-level rm_scores (its response length)
    extra_fields: list[dict] = field(default_factory=list)  # verl's per-row extra_fields

    def _reward_info(self, row: int) -> Mapping:
        extra = self.extra_fields[row] if row < len(self.extra_fields) else None
        info = extra.get("reward_extra_info") if isinstance(extra, Mapping) else None
        return info if isinstance(info, Mapping) else {}

    def rollout(self, row: int):
        """The row's session as the curriculum observes it: its structured turns when the
        agent loop recorded them, else the decoded response text."""
        turns = self._reward_info(row).get(TURNS_KEY)
        if turns is None:
            return self.texts[row]
        from exit_verl.history import turns_from_json

        return turns_from_json(turns)

    def feedback(self, row: int) -> str | None:
        """The `feedback` text the reward function returned for a row, if any."""
        text = self._reward_info(row).get(FEEDBACK_KEY)
        return text if isinstance(text, str) and text else None

    @property
    def outcome(self) -> np.ndarray:
        """Each row's outcome reward as verl's estimators read it: the unmasked score sum."""
        return np.array([float(s.sum()) for s in self.scores], dtype=np.float64)

    def session_finals(self) -> dict[tuple[str, int], int]:
        """(uid, session) -> row of its last output, the row verl's GRPO advantage reads."""
        finals: dict[tuple[str, int], int] = {}
        for row, (uid, session, output) in enumerate(
            zip(self.uids, self.sessions, self.outputs, strict=True)
        ):
            known = finals.get((uid, session))
            if known is None or self.outputs[known] < output:
                finals[(uid, session)] = row
        return finals


def fetch_rows(
    tq, keys: Sequence[str], partition_id: str, tokenizer, uids: set[str] | None = None
) -> Rows:
    """The rows of `keys` (only those whose uid is in `uids`, when given), decoded."""
    parsed = [parse_key(k) for k in keys]
    keep = [i for i, p in enumerate(parsed) if uids is None or p[0] in uids]
    chosen = [keys[i] for i in keep]
    if not chosen:
        return Rows(partition_id, [], [], [], [], [], [])
    data = tq.kv_batch_get(keys=chosen, partition_id=partition_id, select_fields=FIELDS)
    responses = list(data["responses"].unbind())
    texts = tokenizer.batch_decode([r.tolist() for r in responses], skip_special_tokens=True)
    return Rows(
        partition_id=partition_id,
        keys=chosen,
        uids=[parsed[i][0] for i in keep],
        sessions=[parsed[i][1] for i in keep],
        outputs=[parsed[i][2] for i in keep],
        texts=list(texts),
        scores=[s.float().clone() for s in data["rm_scores"].unbind()],
        extra_fields=_extra_fields(data, len(chosen)),
    )


def _extra_fields(data, n: int) -> list[dict]:
    values = data.get("extra_fields", None) if hasattr(data, "get") else None
    if values is None:
        return [{} for _ in range(n)]
    values = values.tolist() if hasattr(values, "tolist") else list(values)
    return [v if isinstance(v, dict) else {} for v in values]


def with_outcome(scores: torch.Tensor, outcome: float) -> torch.Tensor:
    """`scores` with the difference to `outcome` moved onto the last token, where verl's agent
    loop puts the outcome: the unmasked sum then equals `outcome` whatever the mask says."""
    if scores.numel() == 0:
        raise ValueError("a row without response tokens has nowhere to hold a reward")
    out = scores.clone()
    out[-1] += outcome - float(scores.sum())
    return out


def nested(rows: Sequence[torch.Tensor]) -> torch.Tensor:
    return torch.nested.as_nested_tensor(list(rows), layout=torch.jagged)


def put_field(tq, partition_id: str, keys: Sequence[str], name: str, rows) -> None:
    """Writes one per-token field for `keys` (a nested tensor, as verl stores it)."""
    from tensordict import TensorDict

    if not keys:
        return
    fields = TensorDict({name: nested(rows)}, batch_size=len(keys))
    tq.kv_batch_put(keys=list(keys), partition_id=partition_id, fields=fields)


def get_field(tq, partition_id: str, keys: Sequence[str], name: str) -> list[torch.Tensor]:
    if not keys:
        return []
    data = tq.kv_batch_get(keys=list(keys), partition_id=partition_id, select_fields=[name])
    return list(data[name].unbind())
