"""Wall time per step of verl's own trainer on the CPU path, split into generate / reward /
update, and the peak memory of the whole job (all Ray processes), on the demo's arithmetic
tasks.

    python benches/verl_cpu_step.py --model smollm2 --lora-rank 16 --steps 2 --out /tmp/bench

Runs stock `python -m verl.trainer.main_ppo` (sync GRPO) with `exit_verl.verl.cpu`'s overrides
and prints verl's `timing_s/*` per step (from its file tracker), the time the reward function
spent per step, and the job's wall time and peak summed RSS/PSS. Figures vary with what else
runs on the machine; the job's start-up (Ray, imports, model loads) is the difference between
the wall time and the sum of the steps.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

REWARD = '''"""Reward of the benchmark: the demo's graded arithmetic reward, timed per call."""
import json, os, time

from exit_verl.demo.tasks import reward


def compute_score(data_source, solution_str, ground_truth, extra_info=None, **kwargs):
    start = time.perf_counter()
    value = reward({"answer": ground_truth}, solution_str)
    with open(os.environ["BENCH_REWARD_LOG"], "a") as log:
        log.write(json.dumps({"t": time.time(), "s": time.perf_counter() - start}) + "\\n")
    return value
'''


def build_data(out: Path, rows: int) -> None:
    import pandas as pd

    from exit_verl.demo.tasks import make_tasks

    for split, name, n in (("train", "train.parquet", rows), ("heldout", "val.parquet", 4)):
        records = [
            {
                "data_source": t["data_source"],
                "prompt": [{"role": "user", "content": t["prompt"]}],
                "ability": "math",
                "reward_model": {"style": "rule", "ground_truth": t["answer"]},
                "extra_info": {"index": i},
            }
            for i, t in enumerate(make_tasks(n, split=split, seed=0))
        ]
        pd.DataFrame(records).to_parquet(out / name)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", choices=["smollm2", "tiny"], default="smollm2")
    parser.add_argument("--lora-rank", type=int, default=16)
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--prompts", type=int, default=4, help="prompts per step")
    parser.add_argument("--group", type=int, default=4, help="responses per prompt (rollout.n)")
    parser.add_argument("--response-length", type=int, default=64)
    parser.add_argument("--micro-batch", type=int, default=4)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--timeout", type=float, default=3600)
    parser.add_argument("overrides", nargs="*", help="extra verl overrides")
    args = parser.parse_args()

    from exit_verl.demo.measure import run_measured
    from exit_verl.models import smollm2_path, tiny_llama_path
    from exit_verl.verl.cpu import cpu_overrides, job_env

    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    for stale in ("metrics.jsonl", "reward_times.jsonl"):
        (out / stale).unlink(missing_ok=True)
    build_data(out, rows=args.prompts * max(args.steps, 1) * 2)
    (out / "reward_fn.py").write_text(REWARD)
    model = smollm2_path() if args.model == "smollm2" else tiny_llama_path()
    lora = (
        [
            f"actor_rollout_ref.model.lora_rank={args.lora_rank}",
            f"actor_rollout_ref.model.lora_alpha={2 * args.lora_rank}",
            "actor_rollout_ref.actor.optim.lr=2e-4",
        ]
        if args.lora_rank > 0
        else ["actor_rollout_ref.actor.optim.lr=1e-6"]
    )
    command = [
        sys.executable,
        "-m",
        "verl.trainer.main_ppo",
        *cpu_overrides(micro_batch_size=args.micro_batch),
        "algorithm.adv_estimator=grpo",
        "trainer.v1.trainer_mode=sync",
        f"data.train_files={out / 'train.parquet'}",
        f"data.val_files={out / 'val.parquet'}",
        f"data.train_batch_size={args.prompts}",
        "data.max_prompt_length=256",
        f"data.max_response_length={args.response_length}",
        f"actor_rollout_ref.model.path={model}",
        f"actor_rollout_ref.rollout.n={args.group}",
        f"actor_rollout_ref.actor.ppo_mini_batch_size={args.prompts}",
        *lora,
        f"reward.custom_reward_function.path={out / 'reward_fn.py'}",
        "reward.custom_reward_function.name=compute_score",
        "trainer.logger=[console,file]",
        "trainer.project_name=bench",
        "trainer.experiment_name=verl_cpu_step",
        f"trainer.default_local_dir={out / 'checkpoints'}",
        f"trainer.total_training_steps={args.steps}",
        "trainer.val_before_train=false",
        "trainer.test_freq=-1",
        "trainer.save_freq=-1",
        *args.overrides,
    ]
    env = job_env(out / "metrics.jsonl")
    env["BENCH_REWARD_LOG"] = str(out / "reward_times.jsonl")
    measured = run_measured(
        command, env=env, cwd=out, log_path=out / "log.txt", timeout=args.timeout
    )
    if measured.returncode != 0:
        print((out / "log.txt").read_text(errors="replace")[-3000:])
        raise SystemExit(f"job failed: {measured.summary()}")

    steps = {}
    for line in (out / "metrics.jsonl").read_text().splitlines():
        record = json.loads(line)
        if "timing_s/step" in record["data"]:
            steps[record["step"]] = record["data"]
    rewards = [json.loads(x) for x in (out / "reward_times.jsonl").read_text().splitlines()]
    per_step = len(rewards) // max(len(steps), 1)
    print(
        f"model={args.model} lora_rank={args.lora_rank} prompts={args.prompts} "
        f"n={args.group} response_length={args.response_length}"
    )
    print("step  step_s  gen_s  reward_s(sum)  old_logp_s  update_actor_s  sync_s  resp_len")
    for i, (step, m) in enumerate(sorted(steps.items())):
        reward_s = sum(r["s"] for r in rewards[i * per_step : (i + 1) * per_step])
        print(
            f"{step:4d}  {m['timing_s/step']:6.1f}  {m['timing_s/gen']:5.1f}  {reward_s:13.3f}  "
            f"{m.get('timing_s/old_log_prob', 0):10.1f}  {m['timing_s/update_actor']:14.1f}  "
            f"{m.get('timing_s/update_weights', 0):6.2f}  {m['response_length/mean']:8.1f}"
        )
    print(measured.summary())
    for kind, rss in measured.peak_rss_by_kind.items():
        print(f"  peak RSS {rss / (1 << 30):5.2f} GiB  {kind}")
    (out / "summary.json").write_text(
        json.dumps({"measured": measured.__dict__, "steps": steps}, indent=1, default=float)
    )


if __name__ == "__main__":
    main()
