"""Hugging Face loading for the PRM families: tokenizer, model, device, dtype, FLOP spec.

Why a private module: the PRM adapters need the same few steps (resolve device and dtype, load
with the config's trust_remote_code, refuse a checkpoint whose head would be randomly initialised,
count unique parameters for the FLOP ledger). These overlap with the policy backend's loaders
(rebase/backends/loading.py) and should be merged with them once both are settled.

    tok = load_tokenizer(cfg)
    model = load_model(cfg, "causal")          # or "token_classify"
    spec = flop_spec(model)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from rebase.config import PRMConfig
from rebase.errors import BadInput
from rebase.flops import FlopSpec

Kind = Literal["causal", "token_classify"]
_DTYPES = ("auto", "float32", "bfloat16", "float16")


def _check_path(cfg: PRMConfig) -> None:
    p = cfg.path
    # a path that looks local but is absent is a typo, not a hub id: say so before transformers
    # turns it into a long hub error
    if p.startswith(("/", "./", "../", "~")) and not Path(p).expanduser().exists():
        raise BadInput(f"prm.path: '{p}' does not exist")


def resolve_device(cfg: PRMConfig) -> str:
    import torch

    if cfg.device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if cfg.device.startswith("cuda") and not torch.cuda.is_available():
        raise BadInput(f"prm.device: '{cfg.device}' requested but no CUDA device is available")
    if cfg.device != "cpu" and not cfg.device.startswith("cuda"):
        raise BadInput(f"prm.device: '{cfg.device}' is not one of auto, cpu, cuda, cuda:N")
    return cfg.device


def resolve_dtype(cfg: PRMConfig, device: str) -> Any:
    """auto: float32 on CPU (bf16 matmuls are slow there and the scores should be exact), the
    checkpoint's own dtype on CUDA."""
    import torch

    if cfg.dtype not in _DTYPES:
        raise BadInput(f"prm.dtype: '{cfg.dtype}' is not one of {', '.join(_DTYPES)}")
    if cfg.dtype == "auto":
        return torch.float32 if device == "cpu" else "auto"
    return getattr(torch, cfg.dtype)


def load_tokenizer(cfg: PRMConfig) -> Any:
    from transformers import AutoTokenizer

    _check_path(cfg)
    kw: dict[str, Any] = {"trust_remote_code": cfg.trust_remote_code}
    if cfg.gguf_file:
        kw["gguf_file"] = cfg.gguf_file
    try:
        tok = AutoTokenizer.from_pretrained(cfg.path, **kw)
    except (OSError, ValueError) as e:
        raise BadInput(f"prm.path: cannot load a tokenizer from '{cfg.path}' ({str(e).splitlines()[0]})") from None
    if tok.pad_token_id is None:
        # padding positions are masked out and never read, so any id will do
        tok.pad_token = tok.eos_token if tok.eos_token is not None else tok.convert_ids_to_tokens(0)
    return tok


def load_model(cfg: PRMConfig, kind: Kind) -> Any:
    """Load in eval mode on the configured device. A head missing from the checkpoint (so that
    transformers would initialise it at random) is a BadInput: random scores must never pass for
    a reward model."""
    import transformers
    from transformers import AutoConfig

    _check_path(cfg)
    device = resolve_device(cfg)
    kw: dict[str, Any] = {"trust_remote_code": cfg.trust_remote_code, "dtype": resolve_dtype(cfg, device)}
    if cfg.gguf_file:
        kw["gguf_file"] = cfg.gguf_file
    try:
        hf_cfg = AutoConfig.from_pretrained(cfg.path, trust_remote_code=cfg.trust_remote_code,
                                            **({"gguf_file": cfg.gguf_file} if cfg.gguf_file else {}))
    except (OSError, ValueError) as e:
        raise BadInput(f"prm.path: cannot load a model config from '{cfg.path}' ({str(e).splitlines()[0]})") from None
    auto = transformers.AutoModelForCausalLM
    if kind == "token_classify":
        auto = transformers.AutoModelForTokenClassification
        auto_map = getattr(hf_cfg, "auto_map", None) or {}
        # Checkpoints such as Qwen2.5-Math-PRM-7B ship their own head class behind AutoModel; the
        # stock token-classification class would replace that head with a random one.
        if "AutoModel" in auto_map and "AutoModelForTokenClassification" not in auto_map:
            if not cfg.trust_remote_code:
                raise BadInput(f"prm.trust_remote_code: '{cfg.path}' defines its own head "
                               f"({auto_map['AutoModel']}); set trust_remote_code: true to load it")
            auto = transformers.AutoModel
    try:
        model, info = auto.from_pretrained(cfg.path, output_loading_info=True, **kw)
    except (OSError, ValueError) as e:
        raise BadInput(f"prm.path: cannot load '{cfg.path}' as a {kind} model ({str(e).splitlines()[0]})") from None
    missing = [k for k in info.get("missing_keys", []) if "rotary" not in k]
    if missing:
        raise BadInput(f"prm.path: '{cfg.path}' has no trained weights for {', '.join(sorted(missing)[:3])}"
                       f"{' ...' if len(missing) > 3 else ''} (is family '{cfg.family}' right for it?)")
    return model.to(device).eval()


def count_params(model: Any) -> int:
    """Unique parameters (tied embeddings counted once: `parameters()` deduplicates them)."""
    return sum(p.numel() for p in model.parameters())


def flop_spec(model: Any) -> FlopSpec:
    cfg: Any = model.config
    if model.get_output_embeddings() is None:
        # a classification head replaces the unembedding: count the embedding matrix once only
        cfg = {**cfg.to_dict(), "tie_word_embeddings": True}
    return FlopSpec.from_hf_config(cfg, n_params=count_params(model))
