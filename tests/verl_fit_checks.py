"""What the fit tests observe and check: a spy on the ExIt controller and GRPO by hand."""

from __future__ import annotations

from collections import defaultdict

import numpy as np
import torch

from exit_verl.verl.controller import ExItController
from exit_verl.verl.rows import parse_key

GROUP = 4


class Spy:
    """Records what the controller issues and what it observes, with the trained flag."""

    def __init__(self, monkeypatch) -> None:
        self.issued: dict[int, list[dict]] = defaultdict(list)
        self.observed: list[dict] = []
        self.lost: set[str] = set()  # uids the controller was told have no rows
        # (uid, session) -> (training reward, advantage scale) the controller returned
        self.signal: dict[tuple[str, int], tuple[float, float]] = {}
        issue, observe = ExItController.next_batch_dict, ExItController.observe
        forget = ExItController.lost
        spy = self

        def lost(controller, uids):
            spy.lost |= {uid for uid in uids if uid in controller.pending}
            return forget(controller, uids)

        def next_batch_dict(controller, n, step):
            batch = issue(controller, n, step)
            for i in range(n):
                spy.issued[step].append(
                    {
                        "uid": str(batch["uid"][i]),
                        "raw_prompt": [dict(m) for m in batch["raw_prompt"][i]],
                        "extra_info": dict(batch["extra_info"][i]),
                    }
                )
            return batch

        def observed(controller, rows, step, trained, reason=None):
            instances = {uid: inst for uid, (inst, _) in controller.pending.items()}
            signal = observe(controller, rows, step, trained, reason)
            spy.signal.update(signal)
            archive = controller.curriculum.archive
            for uid in {u for u, _ in signal}:
                inst = instances[uid]
                members = sorted((s, r) for (u, s), r in rows.session_finals().items() if u == uid)
                resident = inst.archive_id is not None and inst.archive_id in archive
                spy.observed.append(
                    {
                        "step": step,
                        "trained": trained,
                        "reason": reason,
                        "uid": uid,
                        "instance": inst,
                        "texts": [rows.texts[r] for _, r in members],
                        "rewards": [float(rows.outcome[r]) for _, r in members],
                        "score_after": archive.info([inst.archive_id])["score"][0]
                        if resident
                        else None,
                    }
                )
            return signal

        monkeypatch.setattr(ExItController, "next_batch_dict", next_batch_dict)
        monkeypatch.setattr(ExItController, "observe", observed)
        monkeypatch.setattr(ExItController, "lost", lost)


def gsm8k_score(text: str, truth: str) -> float:
    from verl.utils.reward_score import default_compute_score

    return float(default_compute_score("openai/gsm8k", text, truth))


def grpo(rewards: list[float]) -> np.ndarray:
    """GRPO advantages of one group by hand (verl's default: std with Bessel, eps 1e-6)."""
    r = np.asarray(rewards, dtype=np.float64)
    if len(r) == 1:
        return r.copy()
    return (r - r.mean()) / (r.std(ddof=1) + 1e-6)


def check_advantages(update, signal=None) -> int:
    """The actor's advantages: GRPO of each row's training reward within its prompt's group,
    times its advantage scale, on its masked tokens. `signal` maps (uid, session) to the
    (training reward, scale) ExIt computed; without it: the task reward (rm_scores sum), 1."""
    by_uid: dict[str, list[int]] = defaultdict(list)
    reward, scale = {}, {}
    for i in update.real_rows():
        uid, session, _ = parse_key(update.keys[i])
        task = float(update.rm_scores[i].sum())
        reward[i], scale[i] = signal[(uid, session)] if signal else (task, 1.0)
        by_uid[uid].append(i)
    for members in by_uid.values():
        for i, adv in zip(members, grpo([reward[i] for i in members]), strict=True):
            expected = adv * scale[i] * update.response_mask[i].double()
            torch.testing.assert_close(
                update.advantages[i].double(), expected, atol=2e-5, rtol=1e-4
            )
    return len(reward)


def step_metrics(run) -> dict[int, dict]:
    return {m["step"]: m["data"] for m in run.metrics()}
