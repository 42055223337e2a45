"""Shared Hugging Face loading: tokenizer and model from a local directory, a hub id or a GGUF file.

The transformers policy backend (rebase/backends/hf.py) and the PRM adapters (reward_models/) load
models the same way, so the rules live here once:
- a path that looks local (absolute, ./, ../, ~, or more than one "/") and does not exist is a
  BadInput "model path 'x' does not exist" (a hub id is "org/name");
- `gguf_file` names a GGUF file inside `path` (transformers dequantizes it on load);
- dtype "auto" = bfloat16 on CUDA, float32 on CPU; device "auto" = cuda when available, else cpu;
- remote code runs only when the config says `trust_remote_code: true`.

    tok = load_tokenizer("models/qwen", gguf_file=None)
    model = load_causal_lm(model_cfg)            # any object with path/gguf_file/dtype/device/...
    spec = flop_spec(model)                      # FlopSpec with the exact unique parameter count
"""

from __future__ import annotations

from typing import Any, Optional

from rebase.errors import BadInput
from rebase.flops import FlopSpec
from rebase.paths import check_path

DTYPES = {
    "float32": "float32",
    "fp32": "float32",
    "bfloat16": "bfloat16",
    "bf16": "bfloat16",
    "float16": "float16",
    "fp16": "float16",
    "half": "float16",
}


def resolve_device(device: str = "auto") -> Any:
    import torch

    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except RuntimeError:
        raise BadInput(f"device '{device}': expected auto, cpu, cuda or cuda:N") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise BadInput(f"device '{device}': CUDA is not available on this machine")
    return dev


def resolve_dtype(dtype: str, device: Any) -> Any:
    import torch

    if dtype == "auto":
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    if dtype not in DTYPES:
        raise BadInput(f"dtype '{dtype}': expected auto, {', '.join(sorted(set(DTYPES.values())))}")
    return getattr(torch, DTYPES[dtype])


def _from_pretrained(auto: Any, path: str, what: str, gguf_file: Optional[str], **kw: Any) -> Any:
    """`auto.from_pretrained` on a checked path (GGUF aware); a load failure is a BadInput."""
    src = check_path(path, gguf_file)
    if gguf_file:
        kw["gguf_file"] = gguf_file
    try:
        return auto.from_pretrained(src, **kw)
    except OSError as e:
        raise BadInput(f"model path '{path}': cannot load {what} ({str(e).splitlines()[0]})") from None


def load_tokenizer(path: str, gguf_file: Optional[str] = None, trust_remote_code: bool = False) -> Any:
    """The tokenizer, with a pad token set (falls back to EOS: padding is always masked out)."""
    from transformers import AutoTokenizer

    tok = _from_pretrained(AutoTokenizer, path, "a tokenizer", gguf_file, trust_remote_code=trust_remote_code)
    if tok.pad_token_id is None and tok.eos_token_id is not None:
        tok.pad_token = tok.eos_token
    return tok


def load_model(
    path: str,
    *,
    gguf_file: Optional[str] = None,
    dtype: str = "auto",
    device: str = "auto",
    trust_remote_code: bool = False,
    head: str = "causal_lm",
) -> Any:
    """A model in eval mode on its device. head: causal_lm | token_classification."""
    import transformers

    check_path(path, gguf_file)  # a missing path is reported before the device is probed
    dev = resolve_device(device)
    auto = {
        "causal_lm": transformers.AutoModelForCausalLM,
        "token_classification": transformers.AutoModelForTokenClassification,
    }[head]
    model = _from_pretrained(
        auto, path, "the model", gguf_file, dtype=resolve_dtype(dtype, dev), trust_remote_code=trust_remote_code
    )
    return model.to(dev).eval()


def load_causal_lm(cfg: Any) -> Any:
    """load_model from a config-like object (ModelConfig, PRMConfig): path, gguf_file, dtype,
    device, trust_remote_code."""
    return load_model(
        cfg.path,
        gguf_file=getattr(cfg, "gguf_file", None),
        dtype=getattr(cfg, "dtype", "auto"),
        device=getattr(cfg, "device", "auto"),
        trust_remote_code=bool(getattr(cfg, "trust_remote_code", False)),
    )


def count_params(model: Any) -> int:
    """Unique parameters: tied embedding / unembedding weights are counted once."""
    seen: set[int] = set()
    total = 0
    for p in model.parameters():
        key = p.data_ptr() if p.device.type != "meta" else id(p)
        if key not in seen:
            seen.add(key)
            total += p.numel()
    return total


def flop_spec(model: Any) -> FlopSpec:
    """The model's FlopSpec with the exact parameter count of the loaded weights."""
    cfg = model.config
    text_cfg = cfg.get_text_config() if hasattr(cfg, "get_text_config") else cfg
    return FlopSpec.from_hf_config(text_cfg, n_params=count_params(model))
