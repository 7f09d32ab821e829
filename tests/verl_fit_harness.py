"""verl's real v1 trainer on CPU, with fakes only where verl needs an accelerator.

Real (verl 0.9.1, unmodified): the composed `ppo_trainer` config; the trainer class verl's
registry returns for trainer mode "exit"; its `__init__`, `_init_tokenizer`,
`_init_dataloader`, `fit` (replay buffer, batch balancing with padding rows, advantage,
metrics, Tracking with the "file" backend), `_save_checkpoint`, `_load_checkpoint` and
`_validate`; TransferQueue on a local Ray; verl's `AgentLoopWorkerTQ` (`generate_sequences`,
`_run_prompt`, `_agent_loop_postprocess`: keys, tags, rm_scores), verl's
`SingleTurnAgentLoop`, verl's `RewardLoopWorker` with verl's gsm8k scorer.

Fake: the LLM server (`ScriptedLLM`: scripted token outputs), the actor worker group
(`FakeActor`: several data-parallel ranks, log-probs, update, checkpoints with verl's
retention rule), the weight-sync engine, the GPU count, and the Ray dispatch of the agent loop
manager (verl's agent-loop worker class runs in this process, on an event-loop thread, as
verl runs it inside its Ray actor).

`setup_trainer` performs the non-accelerator steps of `PPOTrainer._setup` in verl's order and
swaps in the fakes where `_setup` would create worker groups and servers.
"""

from __future__ import annotations

import asyncio
import contextvars
import json
import os
import re
import threading
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import torch
from verl.experimental.agent_loop.agent_loop import AgentLoopBase, AgentLoopOutput, register
from verl.experimental.agent_loop.single_turn_agent_loop import SingleTurnAgentLoop

QUESTION = re.compile(r"Tom has (\d+) apples and buys (\d+) more")
FAIL_MARK = "[fail]"  # session 1 of such a prompt fails
FAIL_ALL_MARK = "[fail-all]"  # every session fails
# (uid, session) of the agent-loop call being served, for the scripted LLM.
SESSION: contextvars.ContextVar[tuple[str, int]] = contextvars.ContextVar("session")
CHAT_TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}<|eos|>{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)
SYSTEM = "Solve the problem. Write the final answer after ####."


# -- model folder and data --------------------------------------------------------------------


def make_model_dir(path: Path) -> Path:
    """A tokenizer with a chat template and a tiny Llama config (no weights: nothing loads them)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, PreTrainedTokenizerFast

    corpus = [
        f"Tom has {a} apples and buys {b} more. How many now? We add {a} and {b}. #### {a + b}"
        for a in range(40)
        for b in range(0, 40, 7)
    ] + [SYSTEM]
    # The installed prompt templates tokenize compactly, so token budgets are spent on attempts.
    from exit_verl.prompts import TEMPLATES

    corpus += [t for fam in TEMPLATES.values() for t in (fam.system, fam.improve, fam.diverge) if t]
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    bpe.train_from_iterator(
        corpus,
        trainers.BpeTrainer(
            vocab_size=600,
            special_tokens=["<|pad|>", "<|eos|>"],
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        ),
    )
    tok = PreTrainedTokenizerFast(tokenizer_object=bpe, pad_token="<|pad|>", eos_token="<|eos|>")
    tok.chat_template = CHAT_TEMPLATE
    path.mkdir(parents=True, exist_ok=True)
    tok.save_pretrained(path)
    LlamaConfig(
        architectures=["LlamaForCausalLM"],
        vocab_size=len(tok),
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=2048,
        pad_token_id=tok.pad_token_id,
        eos_token_id=tok.eos_token_id,
    ).save_pretrained(path)
    return path


def task_row(i: int, a: int, b: int, *, agent: str = "exit_test_single_turn", mark: str = ""):
    return {
        "data_source": "openai/gsm8k",
        "agent_name": agent,
        "question": [
            {"role": "system", "content": SYSTEM},
            {
                "role": "user",
                "content": f"Tom has {a} apples and buys {b} more. How many now?{mark}",
            },
        ],
        "ability": "math",
        "reward_model": {"style": "rule", "ground_truth": str(a + b)},
        "extra_info": {"split": "train", "index": i},
    }


def write_parquet(path: Path, rows: list[dict]) -> str:
    import pandas as pd

    pd.DataFrame(rows).to_parquet(path)
    return str(path)


def default_train_rows() -> list[dict]:
    """12 tasks; one runs the multi-turn agent loop, one has a failing session."""
    rows = [task_row(i, 3 + 2 * i, 5 + i) for i in range(12)]
    rows[1] = task_row(1, 5, 6, agent="exit_test_multi_turn")
    rows[2] = task_row(2, 7, 7, mark=f" {FAIL_MARK}")
    return rows


def fit_data(work: Path, train_rows: list[dict] | None = None) -> dict:
    """The model folder and verl datasets of a fit test: `train_rows` (default: the default
    training rows), the default validation rows plus a task whose every session fails."""
    val = default_val_rows()
    val.append(task_row(104, 11, 4, mark=f" {FAIL_ALL_MARK}"))
    rows = default_train_rows() if train_rows is None else train_rows
    return {
        "model": make_model_dir(work / "model"),
        "train": Path(write_parquet(work / "train.parquet", rows)),
        "val": Path(write_parquet(work / "val.parquet", val)),
        "val_rows": val,
    }


def default_val_rows() -> list[dict]:
    rows = [task_row(100 + i, 20 + i, 3 * i + 1) for i in range(3)]
    rows.append(task_row(103, 30, 2, mark=f" {FAIL_MARK}"))
    return rows


# -- the scripted LLM server ------------------------------------------------------------------


class ScriptedLLM:
    """verl's LLM server client, scripted. A response to "Tom has a apples and buys b more"
    is right or wrong by (a, b, session): base prompts give mixed groups (and always-right
    groups when a % 4 == 3), improve prompts are always right. `filler` (plus the session
    index) repeats a word to make responses long. Prompts with FAIL_MARK fail in session 1."""

    def __init__(self, tokenizer: Any, filler: int = 0) -> None:
        self.tokenizer = tokenizer
        self.filler = filler
        self.calls = 0
        self.weights_version = 0  # set by FakeWeightSync.update_weights
        self.prompts: list[list[int]] = []  # every prompt it was asked to complete

    def answer_text(self, prompt: str, session: int) -> str:
        found = QUESTION.findall(prompt)
        if not found:
            raise ValueError(f"no question in prompt {prompt[-200:]!r}")
        a, b = (int(x) for x in found[-1])
        # An iteration prompt shows an earlier answer ("We add ..."); diverge asks for a
        # "different" approach.
        improve = "We add" in prompt and "different" not in prompt
        right = improve or a % 4 == 3 or (a + b + session) % 3 != 0
        answer = a + b if right else a + b + 1
        # Sessions word their answers differently (one filler word more per session), so the
        # responses of a group differ also when they agree.
        words = " ".join(["quokka"] * (self.filler + session))
        return f"We add {a} and {b}. {words} #### {answer}".replace("  ", " ")

    async def generate(
        self, *, request_id: str, prompt_ids: list[int], sampling_params: dict, **kwargs: Any
    ):
        from verl.workers.rollout.replica import TokenOutput

        self.calls += 1
        uid, session = SESSION.get()
        self.prompts.append(list(prompt_ids))
        prompt = self.tokenizer.decode(prompt_ids)
        if FAIL_ALL_MARK in prompt or (FAIL_MARK in prompt and session == 1):
            raise RuntimeError(f"scripted failure of session {uid}_{session}")
        text = self.answer_text(prompt, session)
        ids = self.tokenizer.encode(text, add_special_tokens=False) + [self.tokenizer.eos_token_id]
        log_probs = [-0.5] * len(ids) if sampling_params.get("logprobs") else None
        # verl's LLMServerClient labels outputs with the weights version they came from.
        v = self.weights_version
        versions = {"global_steps": v, "min_global_steps": v, "max_global_steps": v}
        return TokenOutput(
            token_ids=ids, log_probs=log_probs, stop_reason="completed", extra_fields=versions
        )


@register("exit_test_single_turn")
class ScriptedSingleTurn(SingleTurnAgentLoop):
    """verl's single-turn agent loop; tells the scripted LLM which session it serves."""

    async def run(self, sampling_params, **kwargs):
        token = SESSION.set((kwargs["uid"], int(kwargs["session_id"])))
        try:
            return await super().run(sampling_params, **kwargs)
        finally:
            SESSION.reset(token)


@register("exit_test_multi_turn")
class ScriptedMultiTurn(AgentLoopBase):
    """A custom multi-turn loop whose response ends with a tool observation (mask 0)."""

    async def run(self, sampling_params, **kwargs):
        token = SESSION.set((kwargs["uid"], int(kwargs["session_id"])))
        try:
            prompt_ids = await self.ct_build_initial_tokens(list(kwargs["raw_prompt"]))
            out = await self.server_manager.generate(
                request_id="multi", prompt_ids=prompt_ids, sampling_params=sampling_params
            )
        finally:
            SESSION.reset(token)
        tool = self.tokenizer.encode("<|tool|>checked<|eos|>", add_special_tokens=False)
        length = self.rollout_config.response_length
        return AgentLoopOutput(
            prompt_ids=prompt_ids,
            response_ids=(out.token_ids + tool)[:length],
            response_mask=([1] * len(out.token_ids) + [0] * len(tool))[:length],
            # tool tokens get log-prob 0, as verl's tool agent loop pads them
            response_logprobs=(out.log_probs + [0.0] * len(tool))[:length]
            if out.log_probs
            else None,
            num_turns=3,
            metrics={},
            extra_fields={**out.extra_fields, "turn_scores": [], "tool_rewards": []},
        )


# -- the agent loop manager: verl's worker, in process ----------------------------------------


class _LocalHandle:
    """An in-process object behind Ray's `handle.method.remote(...)` call syntax."""

    def __init__(self, obj: Any) -> None:
        self._obj = obj

    def __getattr__(self, name: str) -> Any:
        return SimpleNamespace(remote=getattr(self._obj, name))


class InProcessAgentLoopManager:
    """verl's `AgentLoopManagerTQ.generate_sequences` dispatch, with verl's `AgentLoopWorkerTQ`
    class running in this process on a background event loop instead of a Ray actor."""

    def __init__(self, config: Any, llm: ScriptedLLM) -> None:
        from verl.experimental.reward_loop.reward_loop import RewardLoopWorker
        from verl.trainer.ppo.v1.agent_loop_tq import AgentLoopWorkerTQ

        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

        async def build():
            reward = _LocalHandle(RewardLoopWorker(config))
            worker_cls = AgentLoopWorkerTQ.__ray_actor_class__
            return reward, worker_cls(config, llm, None, [reward])

        self.reward_handle, self.worker = self._run(build())

    def _run(self, coro):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result()

    def generate_sequences(self, prompts) -> None:
        for chunk in prompts.chunk(1):  # verl: one chunk per agent-loop worker
            self._run(self.worker.generate_sequences(chunk.clone()))

    def close(self) -> None:
        async def drain():
            pending = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            await asyncio.gather(*pending, return_exceptions=True)

        self._run(drain())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=30)


# -- the accelerator side ---------------------------------------------------------------------


@dataclass
class ActorUpdate:
    step: int
    keys: list[str]
    tags: list[dict]
    advantages: list[torch.Tensor]
    response_mask: list[torch.Tensor]
    rm_scores: list[torch.Tensor]
    responses: list[torch.Tensor]

    def real_rows(self) -> list[int]:
        return [i for i, tag in enumerate(self.tags) if not tag.get("is_padding")]


class FakeActor:
    """verl's actor worker group: `dp` data-parallel ranks, constant log-probs, an update that
    records what it would train on, checkpoints kept by verl's retention rule."""

    def __init__(self, dp: int) -> None:
        from verl.utils.checkpoint.checkpoint_manager import BaseCheckpointManager

        class Retention(BaseCheckpointManager):
            def __init__(self) -> None:
                self.previous_saved_paths = []

        self.dp = dp
        self._dispatch_info: dict = {}
        self.retention = Retention()
        self.updates: list[ActorUpdate] = []
        self.loaded: list[str] = []
        self.trainer: Any = None  # set by `fit`, to label updates with verl's step

    def _query_dispatch_info(self, role: str) -> list[int]:
        return list(range(self.dp))

    def compute_log_prob(self, batch):
        import transfer_queue as tq
        from tensordict import TensorDict

        data = tq.kv_batch_get(
            keys=batch.keys, partition_id=batch.partition_id, select_fields=["input_ids"]
        )
        lengths = data["input_ids"].offsets().diff().tolist()
        values = [torch.full((n,), -1.0) for n in lengths]
        nested = torch.nested.as_nested_tensor(values, layout=torch.jagged)
        out = TensorDict(
            {
                "log_probs": nested,
                "entropy": torch.nested.as_nested_tensor(
                    [v.abs() for v in values], layout=torch.jagged
                ),
            },
            batch_size=len(batch),
        )
        tq.kv_batch_put(keys=batch.keys, partition_id=batch.partition_id, fields=out)
        return batch

    def update_actor(self, batch):
        import transfer_queue as tq

        fields = ["advantages", "response_mask", "rm_scores", "responses"]
        data = tq.kv_batch_get(
            keys=batch.keys, partition_id=batch.partition_id, select_fields=fields
        )
        rows = {name: [t.clone() for t in data[name].unbind()] for name in fields}
        self.updates.append(
            ActorUpdate(
                step=self.trainer.global_steps,
                keys=list(batch.keys),
                tags=[dict(t) for t in batch.tags],
                advantages=rows["advantages"],
                response_mask=rows["response_mask"],
                rm_scores=rows["rm_scores"],
                responses=rows["responses"],
            )
        )
        return {"metrics": {"mfu": [0.0], "pg_loss": [0.0]}}

    def save_checkpoint(self, local_path, hdfs_path=None, global_step=0, max_ckpt_to_keep=None):
        self.retention.ensure_checkpoint_capacity(max_ckpt_to_keep)
        Path(local_path).mkdir(parents=True, exist_ok=True)
        Path(local_path, "state.json").write_text(json.dumps({"step": global_step}))
        self.retention.register_checkpoint(local_path, max_ckpt_to_keep)

    def load_checkpoint(self, local_path, del_local_after_load=False):
        self.loaded.append(local_path)


class FakeWeightSync:
    """verl's checkpoint engine: syncs the actor's weights (here: their version) to the LLM."""

    def __init__(self, llm: ScriptedLLM) -> None:
        self.llm = llm
        self.updates: list[int | None] = []

    def update_weights(self, global_steps=None):
        self.updates.append(global_steps)
        if global_steps is not None:
            self.llm.weights_version = int(global_steps)

    def sleep_replicas(self):
        pass

    def abort_replicas(self, reject_request: bool = False):  # verl's async modes
        pass

    def resume_generation_replicas(self):
        pass


# -- compose, set up, run ---------------------------------------------------------------------


@dataclass
class Run:
    trainer: Any
    manager: InProcessAgentLoopManager
    actor: FakeActor
    llm: ScriptedLLM
    metrics_path: Path
    observed: list[dict] = field(default_factory=list)

    def metrics(self) -> list[dict]:
        lines = self.metrics_path.read_text().splitlines()
        return [json.loads(line) for line in lines]


def compose(workdir: Path, model_dir: Path, train: str, val: str, *overrides: str):
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from verl.trainer import main_ppo

    base = [
        f"actor_rollout_ref.model.path={model_dir}",
        f"data.train_files={train}",
        f"data.val_files={val}",
        "data.prompt_key=question",
        "data.train_batch_size=4",
        "data.max_prompt_length=256",
        "data.max_response_length=128",
        "data.dataloader_num_workers=0",
        "data.filter_overlong_prompts=False",
        "actor_rollout_ref.rollout.n=4",
        "actor_rollout_ref.rollout.name=vllm",
        "actor_rollout_ref.rollout.agent.default_agent_loop=exit_test_single_turn",
        "actor_rollout_ref.actor.ppo_mini_batch_size=2",
        "algorithm.adv_estimator=grpo",
        "trainer.v1.trainer_mode=exit",
        "trainer.device=cpu",
        "trainer.logger=[file]",
        "trainer.project_name=exit_test",
        "trainer.experiment_name=fit",
        f"trainer.default_local_dir={workdir / 'ckpt'}",
        "trainer.val_before_train=False",
        "trainer.test_freq=-1",
        "trainer.save_freq=-1",
        "trainer.total_training_steps=3",
        "+exit.preset=exit",
        "+exit.min_archive_size=2",
        "+exit.embedder=hashing",
    ]
    config_dir = str(Path(main_ppo.__file__).parent / "config")
    with initialize_config_dir(config_dir=config_dir, version_base=None):
        return hydra_compose(config_name="ppo_trainer", overrides=[*base, *overrides])


def compose_with(data: dict, work: Path, *overrides: str):
    """`compose` over the files of `fit_data`."""
    return compose(work, data["model"], str(data["train"]), str(data["val"]), *overrides)


def setup_trainer(config: Any, dp: int = 3, filler: int = 0, llm_factory=None):
    """verl's trainer as `TaskRunnerV1.run` builds it, with `PPOTrainer._setup`'s steps in
    verl's order and fakes where `_setup` creates accelerator workers. `llm_factory(tokenizer)`
    replaces the scripted LLM (the default answers the addition tasks)."""
    from omegaconf import OmegaConf
    from verl.trainer.ppo.v1 import get_trainer_cls

    config.transfer_queue.enable = True
    OmegaConf.resolve(config)
    trainer = get_trainer_cls(config.trainer.v1.trainer_mode)(config=config)
    # PPOTrainer._setup, accelerator parts faked:
    trainer._init_tokenizer()
    trainer._init_dataloader()
    trainer._init_dump_executor()
    trainer.resource_pool_manager = SimpleNamespace(get_n_gpus=lambda: dp)
    trainer.ref_in_actor = False
    actor = FakeActor(dp)
    trainer.actor_rollout_wg = actor
    llm = (llm_factory or (lambda tok: ScriptedLLM(tok, filler=filler)))(trainer.tokenizer)
    manager = InProcessAgentLoopManager(config, llm)
    trainer.reward_loop_manager = SimpleNamespace(
        reward_loop_worker_handles=[manager.reward_handle]
    )
    trainer.teacher_model_manager = None
    trainer.distillation_config = None
    trainer.checkpoint_manager = FakeWeightSync(llm)
    trainer.checkpoint_manager.sleep_replicas()
    try:
        trainer._load_checkpoint()
    except BaseException:
        manager.close()
        raise
    trainer.on_init_end()  # PPOTrainer.init
    return trainer, manager, actor, llm


def clear_transfer_queue() -> None:
    import transfer_queue as tq

    for partition, items in (tq.kv_list() or {}).items():
        if items:
            tq.kv_clear(keys=list(items), partition_id=partition)


def fit(config: Any, metrics_path: Path, dp: int = 3, filler: int = 0, llm_factory=None) -> Run:
    """Builds the trainer and runs verl's `fit`, as `TaskRunnerV1.run` does."""
    os.environ["VERL_FILE_LOGGER_PATH"] = str(metrics_path)
    clear_transfer_queue()
    trainer, manager, actor, llm = setup_trainer(
        config, dp=dp, filler=filler, llm_factory=llm_factory
    )
    actor.trainer = trainer
    try:
        trainer.fit(manager)
    finally:
        logger = getattr(trainer, "logger", None)
        if logger is not None:
            logger.finish()
        manager.close()
    return Run(trainer, manager, actor, llm, metrics_path)
