#!/usr/bin/env bash
# ExIt on BFCL v3 multi-turn tool use with the paper's tool-use settings (arXiv 2509.04575,
# Table 5 / §5): 16 prompts x 8 rollouts, 2 epochs, lr 1e-6, Dr.GRPO-style aggregation (token
# sums normalized by a constant, no std normalization of the group advantages), overlong
# filtering (length-cut episodes get loss mask 0; set by the data preprocessor), the tool-use
# ExIt column (+exit.domain=tool_use) and K = 4 self-improvement steps at each validation.
# Stock verl entry point; the rows select the "exit_bfcl" agent loop. Qwen2.5-Instruct's chat
# template renders tools and hermes tool calls (the default multi_turn.format).
# Prepare the data first (no download; bfcl-eval ships it):
#   pip install --no-deps bfcl-eval
#   python examples/data_preprocess/bfcl.py --out ~/data/bfcl
set -euo pipefail

DATA=${DATA:-$HOME/data/bfcl}
MODEL=${MODEL:-Qwen/Qwen2.5-3B-Instruct}
GROUP=${GROUP:-8}

python -m verl.trainer.main_ppo \
    trainer.v1.trainer_mode=exit \
    +exit.preset=exit \
    +exit.domain=tool_use \
    +exit.val_iterations=4 \
    algorithm.adv_estimator=grpo \
    algorithm.norm_adv_by_std_in_grpo=False \
    algorithm.use_kl_in_reward=False \
    data.train_files="$DATA/train.parquet" \
    data.val_files="$DATA/test.parquet" \
    data.train_batch_size=16 \
    data.max_prompt_length=8192 \
    data.max_response_length=4096 \
    data.filter_overlong_prompts=True \
    actor_rollout_ref.model.path="$MODEL" \
    actor_rollout_ref.model.use_remove_padding=True \
    actor_rollout_ref.model.enable_gradient_checkpointing=True \
    actor_rollout_ref.actor.optim.lr=1e-6 \
    actor_rollout_ref.actor.loss_agg_mode=seq-mean-token-sum-norm \
    actor_rollout_ref.actor.ppo_mini_batch_size=16 \
    actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu=4 \
    actor_rollout_ref.actor.use_kl_loss=False \
    actor_rollout_ref.actor.entropy_coeff=0 \
    actor_rollout_ref.rollout.name=vllm \
    actor_rollout_ref.rollout.n="$GROUP" \
    actor_rollout_ref.rollout.multi_turn.format=hermes \
    actor_rollout_ref.rollout.multi_turn.max_tool_response_length=2048 \
    actor_rollout_ref.rollout.tensor_model_parallel_size=1 \
    actor_rollout_ref.rollout.gpu_memory_utilization=0.5 \
    actor_rollout_ref.rollout.log_prob_micro_batch_size_per_gpu=4 \
    trainer.logger='["console","tensorboard"]' \
    trainer.project_name=exit_verl \
    trainer.experiment_name="bfcl_exit_grpo_$(basename "$MODEL")" \
    trainer.n_gpus_per_node=1 \
    trainer.nnodes=1 \
    trainer.save_freq=20 \
    trainer.test_freq=10 \
    trainer.total_epochs=2 \
    "$@"
