"""Wall time of one CPU rollout round: the rollout's decoding loop (`exit_verl.verl.cpu.decoding`)
against `model.generate` on one left-padded batch (its anchor), same prompts, same run.

    python benches/cpu_generation_bench.py --tasks 64 --rounds 2 --max-new-tokens 48

Round 0 is the demo's held-out arithmetic tasks as base prompts; round r > 0 asks to improve
round r-1's answer (the evaluation's prompts); `--group N` adds a training-style round of
tasks repeated N times and sampled at temperature 1 (a GRPO group per task). Greedy rounds
also report how many completions are token-for-token those of the anchor.
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=2, help="base round + improve rounds")
    parser.add_argument("--max-new-tokens", type=int, default=48)
    parser.add_argument("--group", type=int, default=4, help="samples per task (0: no round)")
    parser.add_argument("--group-tasks", type=int, default=4)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from exit_verl.demo.tasks import make_tasks
    from exit_verl.models import smollm2_path
    from exit_verl.prompts import render_messages, templates_for
    from exit_verl.verl.cpu.decoding import decode
    from exit_verl.verl.cpu.generation import SamplingSpec, generate_with_transformers

    torch.set_num_threads(args.threads)
    path = smollm2_path()
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()
    stops = (int(tokenizer.eos_token_id),)
    pad = int(tokenizer.pad_token_id if tokenizer.pad_token_id is not None else stops[0])
    templates = templates_for("math")
    tasks = make_tasks(args.tasks, "heldout", steps=(1, 1, 2))

    def encode(messages: list[dict]) -> list[int]:
        ids = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True)
        return list(ids["input_ids"] if hasattr(ids, "keys") else ids)

    def timed(fn, prompts, spec):
        start = time.perf_counter()
        completions = fn(model, prompts, spec, pad)
        return completions, time.perf_counter() - start

    print(
        f"model {path.name}, {args.threads} threads, {args.tasks} tasks, "
        f"{args.max_new_tokens} new tokens at most"
    )
    header = (
        "| round | prompts | prompt tokens | new tokens | generate s | decode s | ratio | same |"
    )
    print(header + "\n" + "|---" * 8 + "|")
    greedy = SamplingSpec(args.max_new_tokens, temperature=0.0, stop_token_ids=stops)
    answers: list[str] | None = None
    for round_ in range(args.rounds):
        if answers is None:
            messages = [[{"role": "user", "content": t["prompt"]}] for t in tasks]
        else:
            messages = [
                render_messages([{"role": "user", "content": t["prompt"]}], a, "improve", templates)
                for t, a in zip(tasks, answers, strict=True)
            ]
        prompts = [encode(m) for m in messages]
        anchor, anchor_s = timed(generate_with_transformers, prompts, greedy)
        ours, ours_s = timed(decode, prompts, greedy)
        same = sum(a.token_ids == o.token_ids for a, o in zip(anchor, ours, strict=True))
        new = sum(len(o.token_ids) for o in ours)
        print(
            f"| {round_} | {len(prompts)} | {sum(map(len, prompts))} | {new} | {anchor_s:.1f} "
            f"| {ours_s:.1f} | {anchor_s / ours_s:.2f}x | {same}/{len(prompts)} |",
            flush=True,
        )
        answers = [tokenizer.decode(o.token_ids, skip_special_tokens=True) for o in ours]

    if args.group:
        sampled = SamplingSpec(
            args.max_new_tokens, temperature=1.0, stop_token_ids=stops, logprobs=True
        )
        chosen = tasks[: args.group_tasks]
        prompts = [
            encode([{"role": "user", "content": t["prompt"]}])
            for t in chosen
            for _ in range(args.group)
        ]
        torch.manual_seed(0)
        anchor, anchor_s = timed(generate_with_transformers, prompts, sampled)
        torch.manual_seed(0)
        ours, ours_s = timed(decode, prompts, sampled)
        new = sum(len(o.token_ids) for o in ours)
        print(
            f"| sampled {args.group_tasks}x{args.group} | {len(prompts)} | "
            f"{sum(map(len, prompts))} | {new} | {anchor_s:.1f} | {ours_s:.1f} | "
            f"{anchor_s / ours_s:.2f}x | - |"
        )


if __name__ == "__main__":
    main()
