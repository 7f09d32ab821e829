"""Token-in/token-out generation settings of the CPU rollout server, and generation with
`transformers`' `model.generate` for models `decoding.py` does not cover. No verl or Ray here,
so it is tested on its own.

Semantics follow verl's vLLM server: sampling parameters as the agent loop sends them
(`temperature` 0 means greedy, `top_k` -1 and `top_p` 1 mean off), `max_tokens` defaulting to
what is left of `response_length`, the response ending with (and including) the first stop
token, and log-probabilities of the sampled tokens under the temperature-scaled distribution
(what verl's actor recomputes as `old_log_prob`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import torch
from transformers import GenerationConfig, LogitsProcessor, LogitsProcessorList


@dataclass(frozen=True)
class SamplingSpec:
    """One request's generation settings; requests with equal specs share a batch."""

    max_new_tokens: int
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0
    repetition_penalty: float = 1.0
    stop_token_ids: tuple[int, ...] = ()
    logprobs: bool = False

    @property
    def greedy(self) -> bool:
        return self.temperature <= 0.0


@dataclass
class Completion:
    token_ids: list[int]
    log_probs: list[float] | None
    finish_reason: str  # "stop" (a stop token ended it) or "length"


def resolve_sampling(
    sampling_params: dict,
    prompt_len: int,
    *,
    prompt_length: int,
    response_length: int,
    max_model_len: int,
    stop_token_ids: Iterable[int],
    ignore_eos: bool = False,
) -> SamplingSpec:
    """A `SamplingSpec` from the agent loop's `sampling_params` (vLLM names).

    `max_tokens` (or SGLang's `max_new_tokens`) wins; otherwise the response budget left after
    the prompt, as verl's vLLM server computes it. Always at least one token and never past
    `max_model_len`.
    """
    params = dict(sampling_params)
    room = max_model_len - prompt_len
    if room < 1:
        raise ValueError(
            f"prompt of {prompt_len} tokens leaves no room in max_model_len={max_model_len}"
        )
    if params.get("max_tokens") is not None:
        max_tokens = int(params["max_tokens"])
    elif params.get("max_new_tokens") is not None:
        max_tokens = int(params["max_new_tokens"])
    else:
        max_tokens = min(response_length, prompt_length + response_length - prompt_len)
    max_tokens = max(1, min(max_tokens, room))

    temperature = float(params.get("temperature", 1.0) or 0.0)
    top_p = float(params.get("top_p", 1.0) if params.get("top_p") is not None else 1.0)
    top_k = int(params.get("top_k", -1) if params.get("top_k") is not None else -1)
    if not 0.0 < top_p <= 1.0:
        raise ValueError(f"top_p must be in (0, 1], got {top_p}")
    if temperature < 0:
        raise ValueError(f"temperature must be >= 0, got {temperature}")
    stops: set[int] = set() if ignore_eos or params.get("ignore_eos") else set(stop_token_ids)
    stops.update(int(t) for t in params.get("stop_token_ids") or ())
    return SamplingSpec(
        max_new_tokens=max_tokens,
        temperature=temperature,
        top_p=top_p,
        top_k=max(top_k, 0),  # vLLM's -1 ("off") is transformers' 0
        repetition_penalty=float(params.get("repetition_penalty") or 1.0),
        stop_token_ids=tuple(sorted(stops)),
        logprobs=bool(params.get("logprobs")),
    )


class _SampledLogProbs(LogitsProcessor):
    """Records log p(sampled token) per step, under softmax(logits / temperature).

    transformers runs user processors before its temperature/top-k/top-p warpers, so `scores`
    here are the model's logits. A step's token is only known at the next call (it is the last
    column of `input_ids`), so the previous step's log-softmax is kept and gathered then.
    """

    def __init__(self, temperature: float) -> None:
        self.temperature = temperature if temperature > 0 else 1.0
        self.previous: torch.Tensor | None = None
        self.picked: list[torch.Tensor] = []

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        if self.previous is not None:
            self.picked.append(self.previous.gather(1, input_ids[:, -1:]).squeeze(1))
        self.previous = torch.log_softmax(scores.float() / self.temperature, dim=-1)
        return scores

    def finish(self, last_tokens: torch.Tensor) -> torch.Tensor:
        """(batch, steps) log-probs, given the tokens sampled at the last step."""
        if self.previous is not None:
            self.picked.append(self.previous.gather(1, last_tokens[:, None]).squeeze(1))
            self.previous = None
        return torch.stack(self.picked, dim=1)


def _generation_config(spec: SamplingSpec, pad_token_id: int) -> GenerationConfig:
    kwargs: dict = {
        "max_new_tokens": spec.max_new_tokens,
        "pad_token_id": pad_token_id,
        "eos_token_id": list(spec.stop_token_ids) or None,
        "do_sample": not spec.greedy,
        "use_cache": True,
        "return_dict_in_generate": False,
    }
    if not spec.greedy:
        kwargs.update(temperature=spec.temperature, top_p=spec.top_p, top_k=spec.top_k)
    if spec.repetition_penalty != 1.0:
        kwargs["repetition_penalty"] = spec.repetition_penalty
    return GenerationConfig(**kwargs)


@torch.no_grad()
def generate_with_transformers(
    model: torch.nn.Module,
    prompts: Sequence[Sequence[int]],
    spec: SamplingSpec,
    pad_token_id: int,
) -> list[Completion]:
    """Generates one completion per prompt, all with `spec`, in one left-padded batch."""
    if not prompts:
        return []
    width = max(len(p) for p in prompts)
    input_ids = torch.full((len(prompts), width), pad_token_id, dtype=torch.long)
    attention_mask = torch.zeros((len(prompts), width), dtype=torch.long)
    for row, prompt in enumerate(prompts):
        if len(prompt) == 0:
            raise ValueError("empty prompt")
        input_ids[row, width - len(prompt) :] = torch.as_tensor(list(prompt), dtype=torch.long)
        attention_mask[row, width - len(prompt) :] = 1

    recorder = _SampledLogProbs(spec.temperature) if spec.logprobs else None
    output = model.generate(
        input_ids=input_ids,
        attention_mask=attention_mask,
        generation_config=_generation_config(spec, pad_token_id),
        logits_processor=LogitsProcessorList([recorder]) if recorder else None,
    )
    generated = output[:, width:]
    log_probs = recorder.finish(generated[:, -1]) if recorder else None

    stops = torch.tensor(spec.stop_token_ids or [-1], dtype=torch.long)
    results = []
    for row in range(len(prompts)):
        tokens = generated[row]
        hits = torch.nonzero(torch.isin(tokens, stops)).flatten()
        end = int(hits[0]) + 1 if len(hits) else len(tokens)
        results.append(
            Completion(
                token_ids=tokens[:end].tolist(),
                log_probs=log_probs[row, :end].tolist() if log_probs is not None else None,
                finish_reason="stop" if len(hits) else "length",
            )
        )
    return results
