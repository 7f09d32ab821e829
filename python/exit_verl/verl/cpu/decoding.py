"""The CPU rollout's decoding loop: a batch of prompts generated with the work a 2-core CPU
cannot spare taken out.

- The prefix all prompts share (chat template, system prompt, the improve instruction) is run
  through the model once; identical prompts (a GRPO group's) are prefilled once.
- The rest of each prompt is prefilled in groups of similar length, so little is spent on
  padding, and only the last position's logits are computed.
- A row leaves the batch when it stops; the rows still generating decode without it.

The cache of the batch lays each row out as [shared prefix | padding | own tokens | generated],
with the padding masked out and position ids that skip it, so a row's tokens see exactly the
positions they would see alone. Works with models whose cache is made of full-attention
`DynamicLayer`s (Llama, Qwen, Mistral without a sliding window, ...); `supports` says whether a
model qualifies.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from transformers import DynamicCache
from transformers.cache_utils import DynamicLayer
from transformers.generation.logits_process import (
    RepetitionPenaltyLogitsProcessor,
    TemperatureLogitsWarper,
    TopKLogitsWarper,
    TopPLogitsWarper,
)

from exit_verl.verl.cpu.generation import Completion, SamplingSpec, generate_with_transformers

# A prefill group pads its rows to its longest row; a row joins the group while the padding
# stays under this share of the group's tokens.
MAX_PADDING_SHARE = 0.15
# Bounds the activations of one prefill forward pass (tokens × hidden size × a few buffers).
MAX_PREFILL_TOKENS = 8192


def supports(model: torch.nn.Module) -> bool:
    """Whether every layer of the model's cache is a full-attention `DynamicLayer`."""
    cache = DynamicCache(config=model.config)
    return not cache.layers or all(type(layer) is DynamicLayer for layer in cache.layers)


def _shared_prefix_length(rows: Sequence[tuple[int, ...]]) -> int:
    """Tokens every row starts with, keeping at least one token per row to prefill."""
    first = rows[0]
    limit = min(len(r) for r in rows) - 1
    for i in range(limit):
        token = first[i]
        if any(r[i] != token for r in rows):
            return i
    return max(limit, 0)


def _groups(lengths: Sequence[int]) -> list[list[int]]:
    """Row indices in prefill groups of similar length (rows sorted by length)."""
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    groups: list[list[int]] = []
    tokens = 0
    for i in order:
        width = lengths[i]  # the longest so far: rows come in ascending length
        if groups:
            group = groups[-1]
            padded = (len(group) + 1) * width
            if (
                padded <= MAX_PREFILL_TOKENS
                and padded - (tokens + width) <= MAX_PADDING_SHARE * padded
            ):
                group.append(i)
                tokens += width
                continue
        groups.append([i])
        tokens = width
    return groups


@dataclass
class _Batch:
    """Rows being decoded: their cache, attention mask, next position ids and next logits."""

    cache: DynamicCache
    mask: torch.Tensor  # (rows, cache length), 1 where a row attends
    next_position: torch.Tensor  # (rows,)
    logits: torch.Tensor  # (rows, vocab): the next token's logits

    def keep(self, rows: torch.Tensor) -> None:
        for layer in self.cache.layers:
            layer.batch_select_indices(rows)
        self.mask = self.mask[rows]
        self.next_position = self.next_position[rows]


def _layers(cache: DynamicCache) -> list[tuple[torch.Tensor, torch.Tensor]]:
    return [(layer.keys, layer.values) for layer in cache.layers]


@dataclass
class _Prefilled:
    """The unique prompts after prefill, in prefill-group order (`order[j]` is the prompt at
    position j)."""

    layers: list[tuple[torch.Tensor, torch.Tensor]]  # (rows, heads, prefix + width, dim)
    mask: torch.Tensor
    next_position: torch.Tensor
    logits: torch.Tensor
    order: list[int]


def _prefill(model: torch.nn.Module, rows: list[tuple[int, ...]], pad_token_id: int) -> _Prefilled:
    config = model.config
    shared = _shared_prefix_length(rows)
    prefix: list[tuple[torch.Tensor, torch.Tensor]] = []
    if shared:
        cache = DynamicCache(config=config)
        model(input_ids=torch.tensor([rows[0][:shared]]), past_key_values=cache, logits_to_keep=1)
        prefix = _layers(cache)

    lengths = [len(r) - shared for r in rows]
    width = max(lengths)
    keys: list[list[torch.Tensor]] = []
    values: list[list[torch.Tensor]] = []
    logits: list[torch.Tensor] = []
    order: list[int] = []
    for group in _groups(lengths):
        size, wide = len(group), max(lengths[i] for i in group)
        input_ids = torch.full((size, wide), pad_token_id, dtype=torch.long)
        mask = torch.zeros((size, shared + wide), dtype=torch.long)
        mask[:, :shared] = 1
        positions = torch.full((size, wide), shared, dtype=torch.long)
        for row, i in enumerate(group):
            n = lengths[i]
            input_ids[row, wide - n :] = torch.tensor(rows[i][shared:])
            mask[row, shared + wide - n :] = 1
            positions[row, wide - n :] = torch.arange(shared, shared + n)
        cache = DynamicCache(
            [(k.expand(size, -1, -1, -1), v.expand(size, -1, -1, -1)) for k, v in prefix] or None,
            config=config,
        )
        out = model(
            input_ids=input_ids,
            attention_mask=mask,
            position_ids=positions,
            past_key_values=cache,
            logits_to_keep=1,
        )
        logits.append(out.logits[:, -1])
        group_layers = _layers(cache)
        if not keys:
            keys = [[] for _ in group_layers]
            values = [[] for _ in group_layers]
        for layer, (k, v) in enumerate(group_layers):  # every group padded to the batch's width
            keys[layer].append(_insert_gap(k, shared, width - wide))
            values[layer].append(_insert_gap(v, shared, width - wide))
        order.extend(group)

    mask = torch.zeros((len(rows), shared + width), dtype=torch.long)
    mask[:, :shared] = 1
    for j, i in enumerate(order):
        mask[j, shared + width - lengths[i] :] = 1
    return _Prefilled(
        layers=[(torch.cat(k), torch.cat(v)) for k, v in zip(keys, values, strict=True)],
        mask=mask,
        next_position=torch.tensor([len(rows[i]) for i in order], dtype=torch.long),
        logits=torch.cat(logits),
        order=order,
    )


def _insert_gap(states: torch.Tensor, at: int, gap: int) -> torch.Tensor:
    if gap == 0:
        return states
    pad = states.new_zeros(states.shape[:2] + (gap,) + states.shape[3:])
    return torch.cat([states[:, :, :at], pad, states[:, :, at:]], dim=2)


def _start(model: torch.nn.Module, prompts: Sequence[Sequence[int]], pad_token_id: int) -> _Batch:
    rows = [tuple(int(t) for t in p) for p in prompts]
    unique = list(dict.fromkeys(rows))
    done = _prefill(model, unique, pad_token_id)
    position = {unique[i]: j for j, i in enumerate(done.order)}
    take = torch.tensor([position[r] for r in rows], dtype=torch.long)
    cache = DynamicCache([(k[take], v[take]) for k, v in done.layers], config=model.config)
    return _Batch(cache, done.mask[take], done.next_position[take], done.logits[take])


class _Chooser:
    """Next tokens from logits as `model.generate` picks them: repetition penalty, then
    temperature, top-k and top-p; log-probs under softmax(logits / temperature) after the
    penalty (what verl's actor recomputes)."""

    def __init__(self, spec: SamplingSpec) -> None:
        self.spec = spec
        self.penalty = (
            RepetitionPenaltyLogitsProcessor(spec.repetition_penalty)
            if spec.repetition_penalty != 1.0
            else None
        )
        self.warpers = []
        if not spec.greedy:
            if spec.temperature != 1.0:
                self.warpers.append(TemperatureLogitsWarper(spec.temperature))
            if spec.top_k > 0:
                self.warpers.append(TopKLogitsWarper(spec.top_k))
            if spec.top_p < 1.0:
                self.warpers.append(TopPLogitsWarper(spec.top_p))

    def __call__(
        self, logits: torch.Tensor, seen: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        scores = logits.float()
        if self.penalty is not None:
            scores = self.penalty(seen, scores)
        log_probs = None
        if self.spec.logprobs:
            temperature = self.spec.temperature if self.spec.temperature > 0 else 1.0
            log_probs = torch.log_softmax(scores / temperature, dim=-1)
        if self.spec.greedy:
            tokens = scores.argmax(dim=-1)
        else:
            for warper in self.warpers:
                scores = warper(seen, scores)
            tokens = torch.multinomial(torch.softmax(scores, dim=-1), 1).squeeze(1)
        picked = log_probs.gather(1, tokens[:, None]).squeeze(1) if log_probs is not None else None
        return tokens, picked


def _seen_tokens(prompts: Sequence[Sequence[int]]) -> torch.Tensor:
    """Prompts as one tensor for the repetition penalty, each padded with its own first token
    (a repeat changes nothing)."""
    width = max(len(p) for p in prompts)
    seen = torch.empty((len(prompts), width), dtype=torch.long)
    for i, prompt in enumerate(prompts):
        seen[i] = prompt[0]
        seen[i, : len(prompt)] = torch.tensor(list(prompt))
    return seen


@torch.no_grad()
def decode(
    model: torch.nn.Module, prompts: Sequence[Sequence[int]], spec: SamplingSpec, pad_token_id: int
) -> list[Completion]:
    """One completion per prompt, all with `spec` (prompts checked non-empty by the caller)."""
    batch = _start(model, prompts, pad_token_id)
    chooser = _Chooser(spec)
    seen = _seen_tokens(prompts) if chooser.penalty is not None else None
    stops = torch.tensor(spec.stop_token_ids or [-1], dtype=torch.long)
    tokens: list[list[int]] = [[] for _ in prompts]
    log_probs: list[list[float]] = [[] for _ in prompts]
    stopped = [False] * len(prompts)
    alive = torch.arange(len(prompts))
    for step in range(spec.max_new_tokens):
        chosen, picked = chooser(batch.logits, seen)
        for row, (request, token) in enumerate(zip(alive.tolist(), chosen.tolist(), strict=True)):
            tokens[request].append(token)
            if picked is not None:
                log_probs[request].append(float(picked[row]))
        done = torch.isin(chosen, stops)
        for request in alive[done].tolist():
            stopped[request] = True
        if step + 1 == spec.max_new_tokens or bool(done.all()):
            break
        if bool(done.any()):
            rows = torch.nonzero(~done).flatten()
            batch.keep(rows)
            alive, chosen = alive[rows], chosen[rows]
            if seen is not None:
                seen = seen[rows]
        if seen is not None:
            seen = torch.cat([seen, chosen[:, None]], dim=1)
        batch.mask = torch.cat([batch.mask, batch.mask.new_ones((len(alive), 1))], dim=1)
        out = model(
            input_ids=chosen[:, None],
            attention_mask=batch.mask,
            position_ids=batch.next_position[:, None],
            past_key_values=batch.cache,
        )
        batch.next_position = batch.next_position + 1
        batch.logits = out.logits[:, -1]
    return [
        Completion(
            token_ids=tokens[i],
            log_probs=log_probs[i] if spec.logprobs else None,
            finish_reason="stop" if stopped[i] else "length",
        )
        for i in range(len(prompts))
    ]


def generate_batch(
    model: torch.nn.Module,
    prompts: Sequence[Sequence[int]],
    spec: SamplingSpec,
    pad_token_id: int,
) -> list[Completion]:
    """One completion per prompt, all with `spec`: `decode` where the model's cache allows it,
    `model.generate` on one left-padded batch otherwise."""
    if not prompts:
        return []
    if any(len(p) == 0 for p in prompts):
        raise ValueError("empty prompt")
    if supports(model):
        return decode(model, prompts, spec, pad_token_id)
    return generate_with_transformers(model, prompts, spec, pad_token_id)
