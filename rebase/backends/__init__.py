"""Generation backends, registered lazily so that torch / vllm / httpx load only when used."""

from rebase.registry import BACKENDS

BACKENDS.register_lazy("transformers", "rebase.backends.hf:TransformersGenerator")
BACKENDS.register_lazy("vllm", "rebase.backends.vllm_backend:VLLMGenerator")
BACKENDS.register_lazy("openai", "rebase.backends.openai_backend:OpenAIGenerator")
