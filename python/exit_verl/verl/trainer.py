"""verl's own v1 trainer, extended with ExIt by a mixin (no verl file is patched or copied).

The mixin overrides four methods of `verl.trainer.ppo.v1.trainer_base.PPOTrainer`:
- `_init_dataloader`: after verl builds its datasets, an `ExItController` takes the training
  dataset as base tasks (in the trainer process, never in dataloader workers);
- `_fetch_one_gen_batch`: each generation batch comes from the curriculum (replays mixed with
  base tasks), in the exact collated format of verl's dataloader;
- `_compute_advantage`: the group rewards verl's reward loop wrote (`rm_scores`) go through
  `observe` (learnability → archive, children → archive, diversity bonus) and the shaped
  scores replace them before verl's advantage estimator runs;
- `_save_checkpoint` / `_load_checkpoint`: archive and curriculum state live next to verl's
  checkpoint (`global_step_N/exit_archive.snap`, `exit_state.json`) and resume exactly;
and `_validate` adds the multi-step self-improvement evaluation (`exit.val_iterations`).
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from exit_verl.verl.controller import SUPPORTED_ESTIMATORS, ExItController, exit_config_from


class ExItTrainerMixin:
    """Mix in front of a verl PPOTrainer subclass (see `exit_trainer_class`)."""

    exit: ExItController

    def _init_dataloader(self) -> None:
        super()._init_dataloader()  # type: ignore[misc]
        config = self.config  # type: ignore[attr-defined]
        estimator = str(config.algorithm.adv_estimator)
        if estimator not in SUPPORTED_ESTIMATORS:
            supported = ", ".join(SUPPORTED_ESTIMATORS)
            raise ValueError(
                f"ExIt needs a group-based advantage estimator ({supported}); "
                f"got algorithm.adv_estimator={estimator}"
            )
        if int(config.actor_rollout_ref.rollout.n) < 2:
            raise ValueError("ExIt needs actor_rollout_ref.rollout.n >= 2 (the group size G)")
        self.exit = build_controller(config, self.train_dataset, self.tokenizer)  # type: ignore[attr-defined]

    def _fetch_one_gen_batch(self):
        from verl.utils import tensordict_utils as tu

        config = self.config  # type: ignore[attr-defined]
        n = config.data.get("gen_batch_size", None) or config.data.train_batch_size
        return tu.get_tensordict(self.exit.next_batch_dict(int(n), self.global_steps))  # type: ignore[attr-defined]

    def _compute_advantage(self, batch, metrics: dict):
        import transfer_queue as tq
        from tensordict import TensorDict
        from verl.protocol import DataProto
        from verl.workers.utils.padding import response_to_nested

        fields = ["uid", "responses", "response_mask", "rm_scores"]
        data = tq.kv_batch_get(
            keys=batch.keys, partition_id=batch.partition_id, select_fields=fields
        )
        response_mask = data["response_mask"]
        proto = DataProto(batch=data.to_padded_tensor())
        proto.non_tensor_batch["uid"] = np.array(proto.batch.pop("uid").tolist(), dtype=object)
        shaped, exit_metrics = self.exit.shape_rewards(  # type: ignore[attr-defined]
            proto,
            self.global_steps,  # type: ignore[attr-defined]
            keys=list(batch.keys),
        )
        nested = TensorDict(
            {"rm_scores": response_to_nested(shaped, response_mask)}, batch_size=len(batch)
        )
        tq.kv_batch_put(keys=batch.keys, partition_id=batch.partition_id, fields=nested)
        metrics.update(exit_metrics)
        return super()._compute_advantage(batch, metrics)  # type: ignore[misc]

    def _save_checkpoint(self) -> None:
        # ExIt state first: verl's tracker file (written last by super) must only ever point
        # at folders that already hold it.
        folder = os.path.join(
            self.config.trainer.default_local_dir,  # type: ignore[attr-defined]
            f"global_step_{self.global_steps}",  # type: ignore[attr-defined]
        )
        self.exit.save(folder)
        super()._save_checkpoint()  # type: ignore[misc]

    def _load_checkpoint(self) -> None:
        super()._load_checkpoint()  # type: ignore[misc]
        if self.global_steps > 0:  # type: ignore[attr-defined]
            folder = checkpoint_folder(self.config, self.global_steps)  # type: ignore[attr-defined]
            if folder is None or not self.exit.load(folder):
                raise FileNotFoundError(
                    f"resuming at step {self.global_steps} but the checkpoint holds no ExIt "  # type: ignore[attr-defined]
                    "state (exit_state.json); was it written with exit.enable=true?"
                )

    def _validate(self) -> dict[str, float]:
        metrics = super()._validate()  # type: ignore[misc]
        iterations = int(self.config.exit.get("val_iterations", 0))  # type: ignore[attr-defined]
        if iterations > 0:
            from exit_verl.verl.validation import multistep_validation

            metrics.update(multistep_validation(self, iterations))
        return metrics


def build_controller(config: Any, dataset: Any, tokenizer: Any) -> ExItController:
    """The controller exactly as the trainer builds it (also used by the tests)."""
    exit_cfg = exit_config_from(config.exit)
    seed = config.data.get("seed", None)
    return ExItController(
        exit_cfg,
        dataset,
        tokenizer,
        seed=int(seed) if seed is not None else 0,
        prompt_key=config.data.get("prompt_key", "prompt"),
    )


def checkpoint_folder(config: Any, global_steps: int) -> str | None:
    """The global_step folder verl resumed from (same rules as verl's `_load_checkpoint`)."""
    from verl.utils.checkpoint.checkpoint_manager import find_latest_ckpt_path

    if config.trainer.resume_mode == "resume_path":
        folder = str(config.trainer.resume_from_path)
    else:
        root = str(config.trainer.default_local_dir)
        folder = find_latest_ckpt_path(os.path.abspath(root))
    if folder is None:
        return None
    return os.path.abspath(folder)


def exit_trainer_class(trainer_mode: str) -> type:
    """verl's trainer registered under `trainer_mode`, with ExIt mixed in front."""
    from verl.trainer.ppo.v1 import get_trainer_cls

    if trainer_mode != "sync":
        raise ValueError(
            "ExIt supports trainer.v1.trainer_mode=sync: async modes generate prompts ahead of "
            "the archive updates they should depend on"
        )
    base = get_trainer_cls(trainer_mode)
    return type(f"ExIt{base.__name__}", (ExItTrainerMixin, base), {})
