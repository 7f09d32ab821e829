"""verl agent loop "exit_bfcl": one BFCL multi-turn episode on verl's rollout server.

Selected by a dataset row's `agent_name` (rows from `exit_verl.domains.bfcl.rows`), registered
with verl's agent-loop registry in every process that imports verl's agent loop module (the
`verl.plugins` entry point, `exit_verl.verl.plugin`). The same loop serves verl's own trainer
modes (plain GRPO) and trainer mode "exit".

An episode, for each user turn from the first one the row asks for:
  1. the turn's request is appended as a user message (the first turn's is in `raw_prompt`);
  2. the model generates; tool calls are read in the model's chat-template format by verl's
     tool parser (`actor_rollout_ref.rollout.multi_turn.format`, default hermes), each is run
     as one call string on this episode's `bfcl.Env`, and the outputs go back as `tool`
     messages (shown truncated to `multi_turn.max_tool_response_length`);
  3. until the model answers without a call. More than BFCL's step limit of steps with calls
     in one turn, or running out of `response_length`, ends the episode unfinished (reward 0,
     as BFCL's force-terminated entries); with the row's `overlong_filter`, an episode cut by
     the length gets loss mask 0 everywhere (DAPO's overlong filtering).
The reward is `bfcl.score` of every turn's calls (0/1 for the whole episode). One output per
session: user requests and tool outputs are context tokens (mask 0), the model's tokens mask 1.

ExIt iteration rows (`extra_info.exit_kind` improve/diverge, `extra_info.exit_history` the
archived partial history): `raw_prompt` already shows turns 1..t−1, turn t's request, the
earlier attempt at it and the instruction (`exit_verl.tool_prompts`); the environment is
restored by re-running the calls of turns 1..t−1 on fresh instances, then the episode goes on
from turn t to the end. `extra_info.exit_before_turn` (multi-step validation) lists, per turn,
messages shown before the model's response to it (an earlier attempt and the instruction).

What the trainer reads: `reward_score` (verl puts it on the last token), and the episode's
turns from this session's first one as `extra_fields["reward_extra_info"]["exit_turns"]`
(`exit_verl.history.turns_to_json`), which verl keeps with each TransferQueue row and hands to
validation metrics (string values are skipped there).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any
from uuid import uuid4

from verl.experimental.agent_loop.agent_loop import AgentLoopBase, AgentLoopOutput, register
from verl.experimental.agent_loop.tool_parser import ToolParser
from verl.tools.schemas import OpenAIFunctionToolSchema
from verl.utils.profiler import simple_timer

from exit_verl.domains import bfcl
from exit_verl.domains.bfcl.env import REFUSED
from exit_verl.domains.bfcl.rows import AGENT_NAME, request
from exit_verl.domains.bfcl.rows import tools as visible_tools
from exit_verl.history import History, Turn, turns_to_json
from exit_verl.verl.rows import TURNS_KEY

ITERATION_KINDS = ("improve", "diverge")


def replay_calls(turn: Turn) -> list[str]:
    """The call strings of a recorded turn, as the episode ran them (unformattable calls,
    which were refused, have none)."""
    out = []
    for name, arguments in turn.calls:
        try:
            out.append(bfcl.call_text(name, arguments))
        except ValueError:
            continue
    return out


def restore(task: dict[str, Any], turns: tuple[Turn, ...]) -> tuple[bfcl.Env, list[list[str]]]:
    """A fresh environment after re-running `turns`' calls, and those calls per turn."""
    env = bfcl.Env(task)
    calls = []
    for turn in turns:
        made = replay_calls(turn)
        for text in made:
            env.call(text)
        calls.append(made)
    return env, calls


def _arguments(raw: str) -> Any:
    try:
        return json.loads(raw)
    except (TypeError, ValueError):
        return raw  # kept as the model wrote it; such a call is refused


@dataclass
class _Episode:
    """Token stream and messages of one session, grown as verl's tool agent loop grows them."""

    messages: list[dict[str, Any]]
    prompt_ids: list[int] = field(default_factory=list)
    response_mask: list[int] = field(default_factory=list)
    logprobs: list[float] = field(default_factory=list)
    extra_fields: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    generations: int = 0


@register(AGENT_NAME)
class BFCLAgentLoop(AgentLoopBase):
    """See the module docstring."""

    def __init__(self, *args: Any, tools: Any = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        multi_turn = self.rollout_config.multi_turn
        self.tool_parser = ToolParser.get_tool_parser(multi_turn.format, self.tokenizer)
        self.max_tool_response_length = int(multi_turn.max_tool_response_length)
        self.truncate_side = multi_turn.tool_response_truncate_side
        self.response_length = int(self.rollout_config.response_length)

    async def run(self, sampling_params: dict[str, Any], **kwargs: Any) -> AgentLoopOutput:
        extra = dict(kwargs.get("extra_info") or {})
        task = bfcl.task(str(extra["bfcl_id"]))
        functions = str(extra.get("functions", "all"))
        schemas = json.loads(extra["tools"]) if extra.get("tools") else None
        schemas = schemas if schemas is not None else visible_tools(task, functions)
        parser_tools = [OpenAIFunctionToolSchema.model_validate(s) for s in schemas]
        kind = str(extra.get("exit_kind") or "base")
        start, prefix_turns = 0, ()
        if kind in ITERATION_KINDS:
            history = History.from_bytes(extra["exit_history"])
            prefix_turns = history.turns[:-1]
            start = len(prefix_turns)
        env, calls = restore(task, prefix_turns)
        before = [json.loads(x) for x in extra.get("exit_before_turn") or []]
        if sampling_params.get("stop_token_ids") is None and self.tool_parser.stop_token_ids:
            sampling_params = {**sampling_params, "stop_token_ids": self.tool_parser.stop_token_ids}

        episode = _Episode(messages=list(kwargs["raw_prompt"]))
        # Names the session, for tracing (verl routes a request id's calls to one server).
        request_id = f"{kwargs.get('uid', '')}_{kwargs.get('session_id', 0)}_{uuid4().hex[:12]}"
        episode.prompt_ids = await self.ct_build_initial_tokens(episode.messages, tools=schemas)
        turns: list[Turn] = []
        finished = True
        for t in range(start, len(task["turns"])):
            appended = []
            if t > start:
                appended.append({"role": "user", "content": request(task, t, functions)})
            if t < len(before):
                appended.extend(before[t])
            if appended:
                await self._append_context(episode, appended, schemas)
            turn, made, done = await self._turn(
                episode, env, request_id, sampling_params, schemas, parser_tools
            )
            observation = None if t == start else request(task, t, functions)
            turns.append(Turn(observation, turn["answer"], None, None, tuple(turn["messages"])))
            calls.append(made)
            if not done:
                finished = False
                break
        reward = bfcl.score(task, calls) if finished else 0.0
        overlong = len(episode.response_mask) >= self.response_length
        if overlong and extra.get("overlong_filter"):
            episode.response_mask = [0] * len(episode.response_mask)
        return self._output(episode, turns, reward, finished)

    async def _append_context(self, episode: _Episode, messages: list[dict], schemas) -> None:
        previous = list(episode.messages)
        episode.messages.extend(messages)
        merged, mask, logprobs = await self.ct_merge_context_msg(
            previous,
            episode.messages,
            episode.prompt_ids,
            episode.response_mask,
            episode.logprobs or None,
            tools=schemas,
        )
        episode.prompt_ids = merged.token_ids
        episode.response_mask = mask
        if episode.logprobs:
            episode.logprobs = logprobs or []

    async def _generate(self, episode: _Episode, request_id: str, sampling_params) -> list[int]:
        with simple_timer("generate_sequences", episode.metrics):
            out = await self.server_manager.generate(
                request_id=request_id,
                prompt_ids=episode.prompt_ids,
                sampling_params=sampling_params,
            )
        episode.generations += 1
        if not episode.extra_fields:
            episode.extra_fields.update(out.extra_fields)
        elif out.extra_fields.get("max_global_steps") is not None:
            episode.extra_fields["max_global_steps"] = out.extra_fields["max_global_steps"]
        keep_logprobs = bool(episode.logprobs or out.log_probs)
        merged, mask, logprobs = await self.ct_merge_assistant_token(
            episode.prompt_ids,
            out.token_ids,
            episode.response_mask,
            episode.logprobs if keep_logprobs else None,
            assistant_logprobs=out.log_probs or None,
        )
        episode.prompt_ids = merged.token_ids
        episode.response_mask = mask
        if logprobs is not None:
            episode.logprobs = logprobs
        return list(out.token_ids)

    async def _turn(self, episode, env, request_id, sampling_params, schemas, parser_tools):
        """One user turn: steps until an answer without calls. Returns (turn record, call
        strings made, whether the turn ended normally)."""
        messages: list[dict[str, Any]] = []
        made: list[str] = []
        steps = 0
        while True:
            if len(episode.response_mask) >= self.response_length:
                return {"answer": "", "messages": messages}, made, False
            token_ids = await self._generate(episode, request_id, sampling_params)
            content, found = await self.tool_parser.extract_tool_calls(token_ids, parser_tools)
            content = self._clean(content)
            if not found:
                message = {"role": "assistant", "content": content}
                episode.messages.append(message)
                messages.append(message)
                done = len(episode.response_mask) < self.response_length
                return {"answer": content, "messages": messages}, made, done
            steps += 1
            calls = [
                {
                    "type": "function",
                    "function": {"name": c.name, "arguments": _arguments(c.arguments)},
                }
                for c in found
            ]
            assistant = {"role": "assistant", "content": content, "tool_calls": calls}
            episode.messages.append(assistant)
            messages.append(assistant)
            if steps > bfcl.max_steps():  # BFCL force-quits the episode
                return {"answer": "", "messages": messages}, made, False
            outputs = []
            with simple_timer("tool_calls", episode.metrics):
                for call in calls:
                    function = call["function"]
                    try:
                        text = bfcl.call_text(function["name"], function["arguments"])
                    except ValueError as e:
                        outputs.append(f"{REFUSED}{e}")
                        continue
                    made.append(text)
                    outputs.append(env.call(text))
            tool_messages = [{"role": "tool", "content": self._shown(out)} for out in outputs]
            messages.extend(tool_messages)
            await self._append_context(episode, tool_messages, schemas)

    def _clean(self, content: str | None) -> str:
        """Message text without special tokens (the parser decodes them along), so a recorded
        message renders as the model wrote it."""
        text = content or ""
        for token in self.tokenizer.all_special_tokens:
            text = text.replace(token, "")
        return text.strip()

    def _shown(self, text: str) -> str:
        limit = self.max_tool_response_length
        if len(text) <= limit:
            return text
        if self.truncate_side == "left":
            return "(truncated)..." + text[-limit:]
        if self.truncate_side == "right":
            return text[:limit] + "...(truncated)"
        half = limit // 2
        return text[:half] + "...(truncated)..." + text[-half:]

    def _output(self, episode: _Episode, turns, reward: float, finished: bool):
        n = len(episode.response_mask)
        response_ids = episode.prompt_ids[len(episode.prompt_ids) - n :] if n else []
        prompt_ids = episode.prompt_ids[: len(episode.prompt_ids) - n]
        length = self.response_length
        info = {TURNS_KEY: turns_to_json(turns), "bfcl_finished": float(finished)}
        extra_fields = {
            **episode.extra_fields,
            "reward_extra_info": info,
            "turn_scores": [],
            "tool_rewards": [],
        }
        return AgentLoopOutput(
            prompt_ids=prompt_ids,
            response_ids=response_ids[:length],
            response_mask=episode.response_mask[:length],
            response_logprobs=episode.logprobs[:length] if episode.logprobs else None,
            reward_score=float(reward),
            num_turns=len(episode.messages) + 1,
            metrics=episode.metrics,
            extra_fields=extra_fields,
        )
