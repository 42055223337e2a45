"""The vLLM engine arguments a config may set, and the settings the project always decides.

Why: `engine_args` went to `vllm.LLM(...)` as written and before the project's own settings, so a
config could make vLLM import any installed module (its `logits_processors`, `worker_cls`,
`worker_extension_cls`, `kv_transfer_config`, executor and compilation hooks take import paths) or
switch `trust_remote_code` on behind the documented default. Only the arguments in ALLOWED are
accepted, each a plain scalar (no nested mapping can smuggle a class path in); anything else is
BadInput naming the key. The backends then apply PROJECT_WINS after the user's arguments.

ALLOWED, by what it changes:
- memory and speed: gpu_memory_utilization, kv_cache_memory_bytes, swap_space, cpu_offload_gb,
  max_num_seqs, max_num_batched_tokens, enable_chunked_prefill, enforce_eager, block_size,
  num_gpu_blocks_override, disable_custom_all_reduce, disable_log_stats,
  tensor_parallel_size, pipeline_parallel_size;
- the model as run: max_model_len, quantization, kv_cache_dtype, revision, tokenizer_revision,
  seed, max_logprobs.

    check_engine_args({"gpu_memory_utilization": 0.5}, "models.0.engine_args")   # ok
    check_engine_args({"worker_extension_cls": "os.system"}, "...")              # BadInput
"""

from __future__ import annotations

from typing import Any

ALLOWED = frozenset(
    {
        "gpu_memory_utilization",
        "kv_cache_memory_bytes",
        "swap_space",
        "cpu_offload_gb",
        "max_num_seqs",
        "max_num_batched_tokens",
        "enable_chunked_prefill",
        "enforce_eager",
        "block_size",
        "num_gpu_blocks_override",
        "disable_custom_all_reduce",
        "disable_log_stats",
        "tensor_parallel_size",
        "pipeline_parallel_size",
        "max_model_len",
        "quantization",
        "kv_cache_dtype",
        "revision",
        "tokenizer_revision",
        "seed",
        "max_logprobs",
    }
)
# set by the backends after the user's arguments: model, tokenizer and trust_remote_code come from
# the config's own keys, prefix caching is what the search relies on
PROJECT_WINS = ("model", "tokenizer", "trust_remote_code", "enable_prefix_caching")


def check_engine_args(args: dict[str, Any]) -> dict[str, Any]:
    """`args` if every key is allowed and every value a scalar; ValueError naming the key otherwise
    (pydantic turns it into `...engine_args: <message>`)."""
    for key, value in args.items():
        if key not in ALLOWED:
            why = " (set it with the model's own key)" if key in PROJECT_WINS or key == "dtype" else ""
            raise ValueError(f"'{key}' is not an allowed engine argument{why}; allowed: {', '.join(sorted(ALLOWED))}")
        if value is not None and not isinstance(value, (bool, int, float, str)):
            raise ValueError(f"'{key}' must be a number, a string or a boolean, got {type(value).__name__}")
    return args
