"""Fit an improve / diverge prompt into verl's prompt budget by shortening the earlier attempt.

verl's agent loop renders `raw_prompt` with its Continuous Token builder and, when the result
exceeds `actor_rollout_ref.rollout.prompt_length` (by default `data.max_prompt_length`),
left-truncates it with only a warning (`AgentLoopBase._cap_text_prompt_length`): the system
message and the problem are what gets cut. So the earlier attempt, the only part of an
iteration prompt that can be long, is shortened here in tokens, counted by the same builder
verl's agent loop uses, until the whole rendered prompt fits. A row's tool schemas (which a
chat template renders into the prompt, e.g. the tool-use domain's functions) are counted too.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

Messages = list[dict[str, Any]]
Tools = list[dict[str, Any]] | None
# Marks where tokens of the attempt were left out; the head and the tail are kept, the tail
# longer, because final answers come last.
MARKER = "\n[...]\n"


@dataclass(frozen=True)
class FittedPrompt:
    messages: Messages
    tokens: int
    clipped: bool  # the attempt was shortened
    fits: bool  # False only if even an empty attempt overflows (verl will left-truncate)


class PromptBudget:
    """Counts prompt tokens as verl's agent loop does and shortens attempts to fit."""

    def __init__(
        self, tokenizer: Any, max_tokens: int, count: Callable[[Messages, Tools], int]
    ) -> None:
        if max_tokens < 1:
            raise ValueError(f"max_tokens must be >= 1, got {max_tokens}")
        self.tokenizer = tokenizer
        self.max_tokens = int(max_tokens)
        self.count = count

    @classmethod
    def for_verl(
        cls,
        tokenizer: Any,
        max_tokens: int,
        hf_model_type: str | None = None,
        chat_template_kwargs: dict[str, Any] | None = None,
        processor: Any = None,
    ) -> PromptBudget:
        """The budget with verl's own token builder, configured as `AgentLoopBase` does."""
        from verl.utils.tokenizer.continuous_token_wiring import create_continuous_token_builder

        builder = create_continuous_token_builder(
            tokenizer,
            hf_model_type=hf_model_type,
            chat_template_kwargs=dict(chat_template_kwargs or {}),
            processor=processor,
        )
        return cls(
            tokenizer,
            max_tokens,
            lambda m, tools=None: len(builder.build_initial_tokens(m, tools=tools)),
        )

    def fit(
        self, render: Callable[[str], Messages], attempt: str, tools: Tools = None
    ) -> FittedPrompt:
        """`render(attempt)`, with the attempt shortened (head + marker + tail) if needed;
        `tools` are the schemas the agent loop renders with the prompt."""
        messages = render(attempt)
        tokens = self.count(messages, tools)
        if tokens <= self.max_tokens:
            return FittedPrompt(messages, tokens, clipped=False, fits=True)
        ids = self.tokenizer.encode(attempt, add_special_tokens=False)
        # The largest kept-token count whose rendering fits; renderings are re-counted, so the
        # result fits even where merges across the cut change the count.
        best: FittedPrompt | None = None
        lo, hi = 0, len(ids) - 1
        while lo <= hi:
            keep = (lo + hi) // 2
            candidate = render(self._shorten(ids, keep))
            n = self.count(candidate, tools)
            if n <= self.max_tokens:
                best = FittedPrompt(candidate, n, clipped=True, fits=True)
                lo = keep + 1
            else:
                hi = keep - 1
        if best is not None:
            return best
        messages = render(MARKER.strip())
        return FittedPrompt(messages, self.count(messages, tools), clipped=True, fits=False)

    def _shorten(self, ids: list[int], keep: int) -> str:
        head = keep // 3
        tail = keep - head
        decode = self.tokenizer.decode
        return decode(ids[:head]) + MARKER + (decode(ids[len(ids) - tail :]) if tail else "")
