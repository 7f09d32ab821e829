#!/usr/bin/env bash
# GRPO with ExIt on GSM8K: Qwen2.5-Instruct, vLLM rollout, one GPU. Stock verl entry point,
# trainer mode "exit" (registered by exit-verl's verl.plugins entry point), the paper's math
# ExIt preset (docs/exit.md), and at each validation the paper's K = 16 steps of
# self-improvement with avg@8 (8 sampled chains per problem). One answer format end to end:
# the rows' system prompt, the improve / diverge prompts and the reward (math-verify on the
# last \boxed{}, exit_verl.verl.math_reward) all use \boxed{}.
# Prepare the data first (downloads on this machine):
#   python examples/data_preprocess/gsm8k.py --out ~/data/gsm8k
# MODEL=Qwen/Qwen2.5-1.5B-Instruct picks the larger model; extra args are hydra overrides.
set -euo pipefail

DATA=${DATA:-$HOME/data/gsm8k}
MODEL=${MODEL:-Qwen/Qwen2.5-0.5B-Instruct}
GROUP=${GROUP:-8}
VAL_TEMPERATURE=${VAL_TEMPERATURE:-0.7}

python -m verl.trainer.main_ppo \
    trainer.v1.trainer_mode=exit \
    +exit.preset=exit \
    +exit.val_iterations=16 \
    +exit.val_samples=8 \
    algorithm.adv_estimator=grpo \
    data.train_files="$DATA/train.parquet" \
    data.val_files="$DATA/test.parquet" \
    data.train_batch_size=128 \
    data.max_prompt_length=2048 \
    data.max_response_length=1024 \
    data.filter_overlong_prompts=True \
    actor_rollout_ref.model.path="$MODEL" \
    actor_rollout_ref.model.use_remove_padding=True \
    actor_rollout_ref.model.enable_gradient_checkpointing=True \
    actor_rollout_ref.actor.optim.lr=1e-6 \
    actor_rollout_ref.actor.ppo_mini_batch_size=64 \
    actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu=8 \
    actor_rollout_ref.actor.use_kl_loss=True \
    actor_rollout_ref.actor.kl_loss_coef=0.001 \
    actor_rollout_ref.actor.entropy_coeff=0 \
    actor_rollout_ref.rollout.name=vllm \
    actor_rollout_ref.rollout.n="$GROUP" \
    actor_rollout_ref.rollout.val_kwargs.do_sample=True \
    actor_rollout_ref.rollout.val_kwargs.temperature="$VAL_TEMPERATURE" \
    actor_rollout_ref.rollout.tensor_model_parallel_size=1 \
    actor_rollout_ref.rollout.gpu_memory_utilization=0.5 \
    actor_rollout_ref.rollout.log_prob_micro_batch_size_per_gpu=16 \
    actor_rollout_ref.ref.log_prob_micro_batch_size_per_gpu=16 \
    algorithm.use_kl_in_reward=False \
    reward.custom_reward_function.path=pkg://exit_verl.verl.math_reward \
    reward.custom_reward_function.name=compute_score \
    trainer.logger='["console","tensorboard"]' \
    trainer.project_name=exit_verl \
    trainer.experiment_name="gsm8k_exit_grpo_$(basename "$MODEL")" \
    trainer.n_gpus_per_node=1 \
    trainer.nnodes=1 \
    trainer.save_freq=20 \
    trainer.test_freq=10 \
    trainer.total_epochs=3 \
    "$@"
