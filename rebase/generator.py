"""The Generator protocol: what every policy backend (transformers, vllm, openai) implements.

One `generate` call takes a whole round of requests (every open node of every problem in a batch)
and returns, per request, `n` Completions with real token counts. Backends must:
- cut stop strings exactly as vLLM does (stop string and everything after it removed from `text`,
  finish_reason "stop", stop_reason the string); finish_reason "eos" on the EOS token, "length" at
  max_tokens;
- make (prompt, seed, sample index) reproducible whatever else is in the batch;
- report prompt_tokens, cached_tokens (served from a KV / prefix cache) and generated_tokens.
"""

from __future__ import annotations

from typing import Optional, Protocol, runtime_checkable

from rebase.flops import FlopSpec
from rebase.types import Completion, GenerationRequest


@runtime_checkable
class Generator(Protocol):
    name: str  # the model name used in records and the ledger
    flop_spec: FlopSpec

    def generate(self, requests: list[GenerationRequest]) -> list[list[Completion]]:
        """Return, for each request in order, exactly request.n completions."""
        ...

    def render_chat(self, user: str, system: Optional[str] = None) -> Optional[str]:
        """The prompt text for a chat turn with the generation prompt appended, or None when the
        model has no chat template (the prompt format then uses plain text)."""
        ...

    def encode(self, text: str) -> list[int]:
        """Token ids of `text` as the backend would tokenize a prompt (special tokens included)."""
        ...

    def close(self) -> None: ...
