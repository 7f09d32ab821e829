#!/usr/bin/env bash
# A few ExIt GRPO steps with a tiny model on one accelerator: checks the whole verl path
# (rollout, reward, observe, advantage, update, checkpoint, resume, validation) end to end.
# Needs verl's parquet data, e.g. `python examples/data_preprocess/gsm8k.py --out ~/data/gsm8k`.
set -euo pipefail

DATA=${DATA:-$HOME/data/gsm8k}
MODEL=${MODEL:-Qwen/Qwen2.5-0.5B-Instruct}
OUT=${OUT:-/tmp/exit_verl_smoke}

run() {
    python -m verl.trainer.main_ppo \
        trainer.v1.trainer_mode=exit \
        +exit.preset=exit \
        +exit.min_archive_size=4 \
        +exit.p_replay=0.75 \
        +exit.p_diverge=0.25 \
        +exit.embedder=hashing \
        +exit.val_iterations=3 \
        algorithm.adv_estimator=grpo \
        reward.custom_reward_function.path=pkg://exit_verl.verl.math_reward \
        reward.custom_reward_function.name=compute_score \
        data.train_files="$DATA/train.parquet" \
        data.val_files="$DATA/test.parquet" \
        data.train_batch_size=8 \
        data.val_max_samples=16 \
        data.max_prompt_length=512 \
        data.max_response_length=256 \
        actor_rollout_ref.model.path="$MODEL" \
        actor_rollout_ref.actor.ppo_mini_batch_size=8 \
        actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu=4 \
        actor_rollout_ref.rollout.name=vllm \
        actor_rollout_ref.rollout.n=4 \
        actor_rollout_ref.rollout.gpu_memory_utilization=0.4 \
        actor_rollout_ref.rollout.log_prob_micro_batch_size_per_gpu=8 \
        actor_rollout_ref.ref.log_prob_micro_batch_size_per_gpu=8 \
        trainer.logger='["console"]' \
        trainer.n_gpus_per_node=1 \
        trainer.nnodes=1 \
        trainer.default_local_dir="$OUT" \
        trainer.save_freq=2 \
        trainer.test_freq=2 \
        "$@"
}

rm -rf "$OUT"
run trainer.total_training_steps=4
ls "$OUT"/global_step_4/exit_archive.snap "$OUT"/global_step_4/exit_state.json
# Resume from step 4 and run two more steps: ExIt state must load from the checkpoint.
run trainer.total_training_steps=6 trainer.resume_mode=auto
ls "$OUT"/global_step_6/exit_state.json
echo "gpu_smoke: ok"
