"""Multi-step self-improvement on verl's validation set, inside verl's validation.

Step 0 answers each validation prompt; step t asks the policy to improve its step t − 1 answer
(the training "improve" prompt), for `exit.val_iterations` steps — more than `exit.max_depth`
tests beyond the depths seen in training. Generation and scoring go through verl's own
machinery (agent loop, replay buffer, reward loop), as in `PPOTrainer._validate`. Logged as
`exit_val/mean@t` and `exit_val/best@t`. Needs a running trainer (an accelerator).
"""

from __future__ import annotations

import copy
import uuid
from typing import Any

import numpy as np

from exit_verl.evaluation import evaluate_self_improvement
from exit_verl.verl.controller import base_tasks_from_dataset

MAX_TASKS = 256


def _generate_and_score(trainer: Any, items: list[dict]) -> tuple[list[str], list[float]]:
    import transfer_queue as tq
    from verl.utils import tensordict_utils as tu
    from verl.utils.dataset.rl_dataset import collate_fn

    uids = [f"exit-val-{uuid.uuid4()}" for _ in items]
    batch_dict = collate_fn(items)
    batch_dict["uid"] = np.array(uids, dtype=object)
    batch = tu.get_tensordict(batch_dict)
    tu.assign_non_tensor_data(batch, "global_steps", trainer.global_steps)
    tu.assign_non_tensor_data(batch, "validate", True)
    tag = {"is_prompt": True, "status": "pending", "global_steps": trainer.global_steps}
    tq.kv_batch_put(keys=uids, partition_id="val", tags=[dict(tag) for _ in uids])
    trainer.agent_loop_manager.generate_sequences(batch)
    out, _ = trainer.replay_buffer.sample(
        global_steps=trainer.global_steps, partition_id="val", batch_size=len(uids)
    )
    if trainer.reward_loop_manager.reward_loop_worker_handles is None:
        trainer.checkpoint_manager.sleep_replicas()
        out = trainer._compute_reward_colocate(out)
        trainer.checkpoint_manager.update_weights()
    fields = ["uid", "responses", "rm_scores"]
    data = tq.kv_batch_get(keys=out.keys, partition_id=out.partition_id, select_fields=fields)
    responses = data["responses"].to_padded_tensor(padding=trainer.tokenizer.pad_token_id)
    texts = trainer.tokenizer.batch_decode(responses, skip_special_tokens=True)
    scores = data["rm_scores"].to_padded_tensor(padding=0.0).sum(dim=1).tolist()
    first: dict[str, tuple[str, float]] = {}
    for uid, text, score in zip(data["uid"].tolist(), texts, scores, strict=True):
        first.setdefault(str(uid), (text, float(score)))  # first of the val_kwargs.n samples
    tq.kv_clear(keys=out.keys, partition_id=out.partition_id)
    return [first[u][0] for u in uids], [first[u][1] for u in uids]


def multistep_validation(trainer: Any, iterations: int) -> dict[str, float]:
    dataset = trainer.val_dataset
    count = min(len(dataset), MAX_TASKS)
    tasks = base_tasks_from_dataset(dataset)[:count]
    cache: dict[int, float] = {}

    def generate(prompts: list[list[dict]]) -> list[str]:
        items = []
        for task, prompt in zip(tasks, prompts, strict=True):
            item = copy.deepcopy(dataset[task["row"]])
            item["raw_prompt"] = [dict(m) for m in prompt]
            items.append(item)
        texts, scores = _generate_and_score(trainer, items)
        cache.update({task["row"]: s for task, s in zip(tasks, scores, strict=True)})
        return texts

    curriculum = trainer.exit.curriculum
    result = evaluate_self_improvement(
        generate,
        lambda task, answer: cache[task["row"]],
        tasks,
        iterations,
        templates=curriculum.templates,
    )
    metrics = {}
    for t, (mean, best) in enumerate(zip(result["mean"], result["best_so_far"], strict=True)):
        metrics[f"exit_val/mean@{t}"] = float(mean)
        metrics[f"exit_val/best@{t}"] = float(best)
    return metrics
