"""Generation backends, registered lazily so that torch / vllm / httpx load only when used."""

from rebase.registry import BACKENDS

BACKENDS.register_lazy(
    "transformers",
    "rebase.backends.hf:TransformersGenerator",
    "in-process transformers model with prefix KV reuse (CPU or GPU)",
)
BACKENDS.register_lazy(
    "vllm",
    "rebase.backends.vllm_backend:VLLMGenerator",
    "in-process vLLM engine, one generate call per round, prefix caching",
)
BACKENDS.register_lazy(
    "openai",
    "rebase.backends.openai_backend:OpenAIGenerator",
    "an OpenAI-compatible completions server (vLLM, SGLang, TGI, ...)",
)
