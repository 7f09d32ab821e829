"""The reference reset on the trainer side: when to reset, and the reference in checkpoints.

`ReferenceResetter` follows `ExItSettings.reference` (`exit.ref_reset_every` M,
`exit.ref_reset_alpha` alpha): after the update of every M-th step it asks verl's actor
worker group to set ref <- alpha * actor + (1 - alpha) * ref (`reference_worker`), so the
next step's KL term is measured against the new reference. Which weights move depends on
how verl built the reference (`PPOTrainer.ref_in_actor`):

- a separate reference model: its weights are mixed from the actor's. verl does not
  checkpoint its reference, so once reset it is saved with every checkpoint
  (`global_step_N/exit_reference/`, one file per rank) and restored on resume;
- LoRA: the reference is the actor's base weights, so alpha of the adapter moves into them.
  They are part of verl's actor checkpoint; on resume the rollout is sent the base weights
  again, as it was after the reset.

Metrics: `exit/ref_reset` (1 at a reset step), `timing_s/exit_ref_reset`.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from exit_verl.verl.checkpoint_layout import REFERENCE_FOLDER
from exit_verl.verl.settings import ReferenceReset

logger = logging.getLogger("exit_verl")


class ReferenceResetter:
    def __init__(self, reset: ReferenceReset) -> None:
        self.reset = reset
        # The separate reference differs from the initial weights (reset or restored): it
        # must go into every checkpoint from now on.
        self.modified = False
        if reset.note:
            logger.warning("exit-verl: %s", reset.note)

    @property
    def enabled(self) -> bool:
        return self.reset.every > 0

    def use_worker_class(self, role_worker_mapping: dict) -> None:
        """Swaps verl's actor/rollout(/ref) worker for the subclass with the reset methods,
        in the mapping verl's `_init_resource_pool_mgr` just filled."""
        if not self.enabled:
            return
        import ray
        from verl.trainer.ppo.utils import Role

        from exit_verl.verl.reference_worker import ExItActorRolloutRefWorker

        roles = [r for r in (Role.ActorRollout, Role.ActorRolloutRef) if r in role_worker_mapping]
        if not roles:
            raise ValueError(
                "the reference reset needs verl's hybrid actor/rollout worker; this run maps "
                f"{sorted(str(r) for r in role_worker_mapping)}"
            )
        for role in roles:
            role_worker_mapping[role] = ray.remote(ExItActorRolloutRefWorker)

    def after_step(self, trainer: Any, timing_raw: dict) -> dict[str, float]:
        """Resets the reference when the step just trained is the M-th; the step's metrics."""
        if not self.enabled:
            return {}
        if not self.reset.due(trainer.global_steps):
            return {"exit/ref_reset": 0.0}
        from verl.utils.debug import marked_timer

        with marked_timer("exit_ref_reset", timing_raw):
            trainer.actor_rollout_wg.exit_reset_reference(alpha=self.reset.alpha)
        self.modified = not trainer.ref_in_actor
        return {"exit/ref_reset": 1.0}

    def save(self, trainer: Any, folder: str | Path) -> None:
        if self.modified:
            trainer.actor_rollout_wg.exit_save_reference(folder=str(Path(folder, REFERENCE_FOLDER)))

    def load(self, trainer: Any, folder: str | Path) -> None:
        """After verl loaded the actor from `folder`: the reference as it was saved there."""
        saved = Path(folder, REFERENCE_FOLDER)
        if saved.is_dir():
            if not self.enabled:
                raise ValueError(
                    f"{folder} holds a reset reference policy ({REFERENCE_FOLDER}/); resume "
                    "with exit.ref_reset_every > 0 so that it is restored"
                )
            trainer.actor_rollout_wg.exit_load_reference(folder=str(saved))
            self.modified = True
        elif self.enabled and trainer.ref_in_actor and trainer.global_steps >= self.reset.every:
            trainer.actor_rollout_wg.exit_resync_base()
