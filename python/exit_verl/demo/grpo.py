"""One GRPO update on CPU, with the math taken from verl's `core_algos`.

Group-normalized advantages (`compute_grpo_outcome_advantage`), the clipped policy loss
registered as "vanilla" (`get_policy_loss_fn`), the KL estimators (`kl_penalty`) and the loss
aggregation (`agg_loss`) are verl's own functions; this module only lays the rollout out as
the token-level tensors they expect.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from exit_verl.demo.model import Policy, Rollout


@dataclass
class GrpoSettings:
    clip_ratio: float = 0.2
    loss_agg_mode: str = "token-mean"
    kl_coef: float = 0.0  # > 0 adds a KL term to the frozen base model (adapter disabled)
    kl_type: str = "low_var_kl"
    norm_adv_by_std: bool = True
    grad_clip: float = 1.0


def token_level_rewards(rewards: np.ndarray, response_mask: torch.Tensor) -> torch.Tensor:
    """(n, G) outcome rewards placed on each response's last token, (n·G, R)."""
    flat = torch.as_tensor(np.asarray(rewards, dtype=np.float32).reshape(-1))
    out = torch.zeros(response_mask.shape, dtype=torch.float32)
    last = (response_mask.sum(dim=1) - 1).clamp(min=0)
    out[torch.arange(len(flat)), last] = flat
    return out


def group_advantages(
    rewards: np.ndarray, response_mask: torch.Tensor, norm_by_std: bool = True
) -> torch.Tensor:
    from verl.trainer.ppo import core_algos

    n, g = np.asarray(rewards).shape
    index = np.repeat(np.arange(n), g).astype(object)  # one group id per prompt
    advantages, _ = core_algos.compute_grpo_outcome_advantage(
        token_level_rewards(rewards, response_mask),
        response_mask.float(),
        index,
        norm_adv_by_std_in_grpo=norm_by_std,
    )
    return advantages


def actor_config(settings: GrpoSettings, group_size: int, batch: int):
    from verl.workers.config.actor import ActorConfig

    return ActorConfig(
        strategy="fsdp",
        ppo_mini_batch_size=batch,
        ppo_micro_batch_size_per_gpu=batch,
        use_dynamic_bsz=False,
        rollout_n=group_size,
        clip_ratio=settings.clip_ratio,
        loss_agg_mode=settings.loss_agg_mode,
    )


def grpo_step(
    policy: Policy,
    optimizer: torch.optim.Optimizer,
    rollout: Rollout,
    rewards: np.ndarray,
    settings: GrpoSettings,
) -> dict[str, float]:
    """One on-policy update from the (shaped) rewards; returns loss metrics."""
    from verl.trainer.ppo import core_algos

    n, g = rewards.shape
    mask = rollout.response_mask.float()
    advantages = group_advantages(rewards, rollout.response_mask, settings.norm_adv_by_std)
    metrics = {"adv_abs_mean": float(advantages.abs().sum() / mask.sum().clamp(min=1))}
    if not advantages.abs().sum() > 0:
        return {**metrics, "pg_loss": 0.0, "kl": 0.0, "grad_norm": 0.0, "updated": 0.0}
    policy.model.train()
    log_prob = policy.log_probs(rollout)
    loss_fn = core_algos.get_policy_loss_fn("vanilla")
    config = actor_config(settings, g, n * g)
    # On-policy: the sampling policy is the current one, so old = current (ratio 1, no clip).
    pg_loss, pg_metrics = loss_fn(
        log_prob.detach(), log_prob, advantages, mask, settings.loss_agg_mode, config
    )
    loss = pg_loss
    kl_value = 0.0
    if settings.kl_coef > 0:
        with torch.no_grad():
            ref = policy.log_probs(rollout, adapter=False)
        kld = core_algos.kl_penalty(log_prob, ref, settings.kl_type)
        kl = core_algos.agg_loss(kld, mask, settings.loss_agg_mode)
        loss = loss + settings.kl_coef * kl
        kl_value = float(kl.detach())
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    params = [p for p in policy.model.parameters() if p.requires_grad]
    grad_norm = torch.nn.utils.clip_grad_norm_(params, settings.grad_clip)
    optimizer.step()
    return {
        **metrics,
        "pg_loss": float(pg_loss.detach()),
        "kl": kl_value,
        "grad_norm": float(grad_norm),
        "pg_clipfrac": float(pg_metrics.get("actor/pg_clipfrac", 0.0)),
        "updated": 1.0,
    }
