"""Hugging Face loading for the PRM families, on top of the shared rebase/backends/loading.py.

What the PRM side adds to the shared helpers:
- errors name the config key ("prm.path: ...", "prm.device: ..."), since the user fixes a `prm:`
  section, not a policy model;
- a checkpoint whose head would be initialised at random (missing weights) is refused: random
  scores must never pass for a reward model;
- token-classification checkpoints that ship their own head class behind `AutoModel` (e.g.
  Qwen2.5-Math-PRM-7B's `Qwen2ForProcessRewardModel`) load through that class, which needs
  `trust_remote_code: true`; the stock class would silently swap in a random head;
- the FLOP spec of a model whose unembedding is replaced by a small head counts the embedding once.

    tok = load_tokenizer(cfg)
    model = load_model(cfg, "causal")          # or "token_classify"
    spec = flop_spec(model)
"""

from __future__ import annotations

import dataclasses
from typing import Any, Literal, Optional

from rebase.backends import loading
from rebase.config import PRMConfig
from rebase.errors import BadInput
from rebase.flops import FlopSpec

Kind = Literal["causal", "token_classify"]


def load_tokenizer(cfg: PRMConfig) -> Any:
    try:
        tok = loading.load_tokenizer(cfg.path, cfg.gguf_file, cfg.trust_remote_code)
    except BadInput as e:
        raise BadInput(f"prm.path: {e}") from None
    if tok.pad_token_id is None:
        # padding positions are masked out and never read, so any id will do
        tok.pad_token = tok.convert_ids_to_tokens(0)
    return tok


def load_model(cfg: PRMConfig, kind: Kind) -> Any:
    """The PRM in eval mode on the configured device (device/dtype "auto" as in loading.py)."""
    import transformers
    from transformers import AutoConfig

    try:
        src = loading.check_path(cfg.path, cfg.gguf_file)
    except BadInput as e:
        raise BadInput(f"prm.path: {e}") from None
    try:
        dev = loading.resolve_device(cfg.device)
    except BadInput as e:
        raise BadInput(f"prm.device: {e}") from None
    try:
        dtype = loading.resolve_dtype(cfg.dtype, dev)
    except BadInput as e:
        raise BadInput(f"prm.dtype: {e}") from None
    kw: dict[str, Any] = {"trust_remote_code": cfg.trust_remote_code}
    if cfg.gguf_file:
        kw["gguf_file"] = cfg.gguf_file
    try:
        hf_cfg = AutoConfig.from_pretrained(src, **kw)
    except (OSError, ValueError) as e:
        raise BadInput(f"prm.path: cannot load a model config from '{cfg.path}' ({str(e).splitlines()[0]})") from None
    auto: Any = transformers.AutoModelForCausalLM
    if kind == "token_classify":
        auto = transformers.AutoModelForTokenClassification
        auto_map = getattr(hf_cfg, "auto_map", None) or {}
        if "AutoModel" in auto_map and "AutoModelForTokenClassification" not in auto_map:
            if not cfg.trust_remote_code:
                raise BadInput(
                    f"prm.trust_remote_code: '{cfg.path}' defines its own head "
                    f"({auto_map['AutoModel']}); set trust_remote_code: true to load it"
                )
            auto = transformers.AutoModel
    try:
        model, info = auto.from_pretrained(src, output_loading_info=True, dtype=dtype, **kw)
    except (OSError, ValueError) as e:
        raise BadInput(f"prm.path: cannot load '{cfg.path}' as a {kind} model ({str(e).splitlines()[0]})") from None
    missing = [k for k in (info or {}).get("missing_keys", []) if "rotary" not in k]
    if missing:
        raise BadInput(
            f"prm.path: '{cfg.path}' has no trained weights for {', '.join(sorted(missing)[:3])}"
            f"{' ...' if len(missing) > 3 else ''} (is prm.family '{cfg.family}' right for it?)"
        )
    return model.to(dev).eval()


def output_head(model: Any) -> Optional[Any]:
    """The model's output head when it is one plain Linear on the base model's last hidden state
    (a causal LM's unembedding, a token classifier's `score` / `classifier`): then the head can run
    at the read positions alone. None for anything else (a remote-code head, logit soft-capping or
    scaling), which then runs the whole forward."""
    import torch

    cfg = model.config
    if getattr(cfg, "final_logit_softcapping", None) or getattr(cfg, "logit_scale", None) not in (None, 1, 1.0):
        return None
    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    if head is None:
        head = getattr(model, "score", None) or getattr(model, "classifier", None)
    base = getattr(model, "base_model", None)
    if not isinstance(head, torch.nn.Linear) or base is None or base is model:
        return None
    return head


def logits_at(model: Any, kw: dict[str, Any], rows: list[list[int]], keep: bool) -> list[Any]:
    """Per batch row, the logits at its own positions `rows[r]`. With a plain head, the head runs
    at exactly those positions (nothing else is computed, so the FLOP ledger can charge one head
    row per read position); otherwise the full forward runs (`logits_to_keep` at the union of the
    batch's positions when the model takes it)."""
    import torch

    head = output_head(model)
    if head is not None:
        hidden = model.base_model(**kw).last_hidden_state
        flat = [(r, p) for r, ps in enumerate(rows) for p in ps]
        picked = head(hidden[[r for r, _ in flat], [p for _, p in flat]]) if flat else None
        out, k = [], 0
        for ps in rows:
            out.append(picked[k : k + len(ps)] if ps else torch.zeros(0))
            k += len(ps)
        return out
    cols = None
    if keep:
        cols = sorted({p for ps in rows for p in ps})
        kw["logits_to_keep"] = torch.tensor(cols or [0], dtype=torch.long, device=kw["input_ids"].device)
    res = model(**kw)
    logits = res.logits if hasattr(res, "logits") else res[0]
    return [
        logits[
            r,
            torch.tensor(
                [cols.index(p) for p in ps] if cols is not None else ps, dtype=torch.long, device=logits.device
            ),
        ]
        if ps
        else torch.zeros(0)
        for r, ps in enumerate(rows)
    ]


def flop_spec(model: Any) -> FlopSpec:
    cfg: Any = model.config
    cfg = cfg.get_text_config() if hasattr(cfg, "get_text_config") else cfg
    if model.get_output_embeddings() is not None:
        return FlopSpec.from_hf_config(cfg, n_params=loading.count_params(model))
    # a classification head replaces the unembedding: the embedding matrix counts once, and the
    # head is priced per computed row (2 x d_model x labels), so its weights leave N
    spec = FlopSpec.from_hf_config({**cfg.to_dict(), "tie_word_embeddings": True}, n_params=loading.count_params(model))
    head = output_head(model)
    if head is None:
        return spec
    head_params = sum(p.numel() for p in head.parameters())
    return dataclasses.replace(spec, n_nonembed=spec.n_nonembed - head_params, head=int(head.out_features))
