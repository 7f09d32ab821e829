#!/usr/bin/env bash
# The paper's math setting (shared/PAPER.md; arXiv 2509.04575, Tables 1 and 4): GRPO with one
# column of the ablation ladder on Llama-3.2-3B-Instruct, 1280 MATH training problems, held-out
# MATH500, AMC12 2022/23, AIME 2024/25, Minerva and OlympiadBench, evaluated by K = 16 steps of
# self-improvement with avg@8 (8 chains per problem), for 3 training seeds. Stock verl entry
# point, trainer mode "exit"; reward: math-verify on the last \boxed{} (exit_verl.verl.math_reward).
#
# Prepare the data first (downloads on this machine):
#   python examples/data_preprocess/math_paper.py --out ~/data/exit_math
# Then, for each arm of the ladder:
#   ARM=grpo bash examples/math_exit_grpo.sh; ARM=exit bash examples/math_exit_grpo.sh; ...
#
# From the paper: 128 prompts x 8 rollouts per step, one PPO epoch per batch, lr 1e-6, KL loss
# coefficient 0.001, clip 0.2, the math preset's buffer (N 512, B_min 128, p 0.5, p_div 0.2),
# K = 16, avg@8, 3 seeds. Ours (not given in shared/PAPER.md): the number of steps (STEPS), the
# response / prompt lengths, the evaluation temperature (VAL_TEMPERATURE) and which 1280 MATH
# problems (data preparation). Not reproduced: the paper resets the reference policy every 100
# steps; verl 0.9.1 keeps it fixed. Extra args are hydra overrides.
set -euo pipefail

DATA=${DATA:-$HOME/data/exit_math}
MODEL=${MODEL:-meta-llama/Llama-3.2-3B-Instruct}
ARM=${ARM:-exit}
SEEDS=${SEEDS:-"0 1 2"}
STEPS=${STEPS:-300}
VAL_TEMPERATURE=${VAL_TEMPERATURE:-0.7}
NGPUS=${NGPUS:-8}

for SEED in $SEEDS; do
    python -m verl.trainer.main_ppo \
        trainer.v1.trainer_mode=exit \
        +exit.preset="$ARM" \
        +exit.domain=math \
        +exit.val_iterations=16 \
        +exit.val_samples=8 \
        algorithm.adv_estimator=grpo \
        algorithm.use_kl_in_reward=False \
        data.train_files="$DATA/train.parquet" \
        data.val_files="$DATA/test.parquet" \
        data.train_batch_size=128 \
        data.max_prompt_length=3072 \
        data.max_response_length=2048 \
        data.filter_overlong_prompts=True \
        data.seed="$SEED" \
        actor_rollout_ref.model.path="$MODEL" \
        actor_rollout_ref.model.use_remove_padding=True \
        actor_rollout_ref.model.enable_gradient_checkpointing=True \
        actor_rollout_ref.actor.optim.lr=1e-6 \
        actor_rollout_ref.actor.ppo_epochs=1 \
        actor_rollout_ref.actor.ppo_mini_batch_size=128 \
        actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu=4 \
        actor_rollout_ref.actor.clip_ratio=0.2 \
        actor_rollout_ref.actor.use_kl_loss=True \
        actor_rollout_ref.actor.kl_loss_coef=0.001 \
        actor_rollout_ref.actor.entropy_coeff=0 \
        actor_rollout_ref.rollout.name=vllm \
        actor_rollout_ref.rollout.n=8 \
        actor_rollout_ref.rollout.temperature=1.0 \
        actor_rollout_ref.rollout.val_kwargs.do_sample=True \
        actor_rollout_ref.rollout.val_kwargs.temperature="$VAL_TEMPERATURE" \
        actor_rollout_ref.rollout.tensor_model_parallel_size=1 \
        actor_rollout_ref.rollout.gpu_memory_utilization=0.6 \
        actor_rollout_ref.rollout.log_prob_micro_batch_size_per_gpu=8 \
        actor_rollout_ref.ref.log_prob_micro_batch_size_per_gpu=8 \
        reward.custom_reward_function.path=pkg://exit_verl.verl.math_reward \
        reward.custom_reward_function.name=compute_score \
        trainer.logger='["console","tensorboard"]' \
        trainer.project_name=exit_verl_math \
        trainer.experiment_name="math_${ARM}_seed${SEED}" \
        trainer.n_gpus_per_node="$NGPUS" \
        trainer.nnodes=1 \
        trainer.total_training_steps="$STEPS" \
        trainer.save_freq=50 \
        trainer.test_freq=50 \
        "$@"
done
