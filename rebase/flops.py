"""The FLOP ledger: every backend and PRM call is recorded per problem and priced in FLOPs.

A model's `FlopSpec` comes from its Hugging Face config (Llama, Qwen2, Mistral, GPT-2, ...):
total params, non-embedding params N, n_layer, d_attn (= heads x head_dim), d_model and vocab.

Views (see docs/ARCHITECTURE.md):
- `paper`:  2 x N_total(policy) x generated tokens (reproduces the paper's tables).
- `policy`: every token the policy *processes* (uncached prefill + decode), each costing
            2N + 4 n_layer n_ctx d_attn, plus 2 d_model vocab for each position whose logits are
            computed (one per generated token). n_ctx is the exact number of keys the token attends
            to (its position + 1). Kaplan et al. write 2 n_layer n_ctx d_attn, which counts only the
            QK^T product; we also count the attention-weighted sum over V, which is why measured
            FLOPs (torch FlopCounterMode) agree with this view.
- `total`:  `policy` + the same pricing for every PRM / judge token it reads (prefill only: a
            PRM scores a path in one forward pass), with the output head charged only for the rows
            actually computed: one per scored position (a step tag, a judge's last token), each
            as wide as the head (the vocabulary, or 2 for a token-classification head).
            Padding inside a batch is computed but not charged: it is waste of the batching, not
            a cost of the method, and the PRM families keep it small.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal, Optional, get_args

Role = Literal["policy", "prm", "judge"]
FlopView = Literal["paper", "policy", "total"]  # the ledger's views, defined once here
VIEWS: tuple[str, ...] = get_args(FlopView)


@dataclass(frozen=True)
class FlopSpec:
    n_params: int  # total parameters (embeddings included)
    n_nonembed: int  # N: parameters outside the token embedding and unembedding
    n_layer: int
    d_attn: int  # heads x head_dim (query width)
    d_model: int
    vocab: int
    head: Optional[int] = None  # output head width when it is not the vocabulary (a 2-label classifier)

    @property
    def head_width(self) -> int:
        return self.head if self.head is not None else self.vocab

    @classmethod
    def from_hf_config(cls, cfg: Any, n_params: int | None = None) -> "FlopSpec":
        """Read the spec from a transformers PretrainedConfig (or its dict). `n_params` may be
        passed when the weights are loaded (exact count); otherwise it is computed from shapes."""
        get = (lambda k, d=None: cfg.get(k, d)) if isinstance(cfg, dict) else (lambda k, d=None: getattr(cfg, k, d))
        d_model = get("hidden_size") or get("n_embd") or get("d_model")
        n_layer = get("num_hidden_layers") or get("n_layer")
        n_head = get("num_attention_heads") or get("n_head")
        vocab = get("vocab_size")
        if not (d_model and n_layer and n_head and vocab):
            raise ValueError("config lacks hidden_size/num_hidden_layers/num_attention_heads/vocab_size")
        head_dim = get("head_dim") or d_model // n_head
        n_kv = get("num_key_value_heads") or n_head
        d_ff = get("intermediate_size") or get("n_inner") or 4 * d_model
        tied = bool(get("tie_word_embeddings", True))
        model_type = get("model_type")
        # learned position embeddings (GPT-2) are a lookup like the token embedding: not in N (Kaplan)
        pos_emb = (get("n_positions") or 1024) * d_model if model_type == "gpt2" else 0
        emb = vocab * d_model * (1 if tied else 2) + pos_emb
        if n_params is None:
            gated = model_type not in ("gpt2", "gpt_neox", "opt")
            layer_norm = model_type in ("gpt2", "gpt_neox", "opt")  # LayerNorm has a bias, RMSNorm none
            qkv = head_dim * (n_head + 2 * n_kv)
            attn = d_model * qkv + n_head * head_dim * d_model
            mlp = (3 if gated else 2) * d_model * d_ff
            bias = 0
            if model_type == "gpt2":
                bias = qkv + d_model + d_ff + d_model
            elif model_type == "qwen2":  # q, k, v projections carry biases
                bias = qkv
            elif get("attention_bias"):
                bias = qkv + d_model
            if get("mlp_bias"):
                bias += (2 if gated else 1) * d_ff + d_model
            norms = (4 if layer_norm else 2) * d_model
            n_params = n_layer * (attn + mlp + bias + norms) + emb + (2 if layer_norm else 1) * d_model
        return cls(
            n_params=int(n_params),
            n_nonembed=int(n_params - emb),
            n_layer=int(n_layer),
            d_attn=int(n_head * head_dim),
            d_model=int(d_model),
            vocab=int(vocab),
        )

    def forward_flops(self, start: int, count: int, logits: int) -> float:
        """FLOPs to process `count` tokens at positions start..start+count-1 (each attending to
        position+1 keys) and compute `logits` rows of the output head."""
        if count <= 0:
            return 2.0 * self.d_model * self.head_width * max(logits, 0)
        # sum over positions p of (p + 1) keys = count*start + count*(count+1)/2
        keys = count * start + count * (count + 1) / 2
        return (
            2.0 * self.n_nonembed * count
            + 4.0 * self.n_layer * self.d_attn * keys
            + 2.0 * self.d_model * self.head_width * logits
        )


@dataclass
class LedgerEntry:
    """One call's tokens for one sequence. Processed positions are [cached_tokens, prompt_tokens +
    generated_tokens - 1): the last generated token is sampled but never fed back."""

    model: str
    role: Role
    prompt_tokens: int
    cached_tokens: int
    generated_tokens: int
    logit_rows: Optional[int] = None  # PRM / judge: output-head rows computed (None: every read position)

    @property
    def processed_tokens(self) -> int:
        return max(
            self.prompt_tokens - self.cached_tokens + self.generated_tokens - (1 if self.generated_tokens else 0), 0
        )


@dataclass
class Ledger:
    """All calls made for one problem (or one candidate) with the specs that price them."""

    specs: dict[str, FlopSpec] = field(default_factory=dict)
    entries: list[LedgerEntry] = field(default_factory=list)

    def add(
        self,
        model: str,
        spec: FlopSpec,
        role: Role,
        prompt_tokens: int,
        cached_tokens: int = 0,
        generated_tokens: int = 0,
        logit_rows: Optional[int] = None,
    ) -> None:
        if cached_tokens > prompt_tokens or min(prompt_tokens, cached_tokens, generated_tokens) < 0:
            raise ValueError(
                f"bad token counts: prompt={prompt_tokens} cached={cached_tokens} generated={generated_tokens}"
            )
        if logit_rows is not None and logit_rows < 0:
            raise ValueError(f"bad logit rows: {logit_rows}")
        self.specs.setdefault(model, spec)
        self.entries.append(LedgerEntry(model, role, prompt_tokens, cached_tokens, generated_tokens, logit_rows))

    def extend(self, other: "Ledger") -> None:
        self.specs.update(other.specs)
        self.entries.extend(other.entries)

    def tokens(self, role: str, kind: str) -> int:
        """Sum of `kind` (prompt_tokens | cached_tokens | generated_tokens | processed_tokens)."""
        return sum(getattr(e, kind) for e in self.entries if e.role == role)

    def entry_flops(self, e: LedgerEntry) -> float:
        spec = self.specs[e.model]
        if e.role == "policy":
            # the prompt's last position yields the first token's logits; each later one, one more
            return spec.forward_flops(e.cached_tokens, e.processed_tokens, e.generated_tokens)
        # PRM / judge: one forward over the uncached path; head rows only where the scores are read
        n = e.prompt_tokens - e.cached_tokens
        rows = n if e.logit_rows is None else e.logit_rows
        return spec.forward_flops(e.cached_tokens, n, rows) + spec.forward_flops(
            e.prompt_tokens, e.generated_tokens, e.generated_tokens
        )

    def flops(self, view: str) -> float:
        if view == "paper":
            return sum(
                2.0 * self.specs[e.model].n_params * e.generated_tokens for e in self.entries if e.role == "policy"
            )
        if view == "policy":
            return sum(self.entry_flops(e) for e in self.entries if e.role == "policy")
        if view == "total":
            return sum(self.entry_flops(e) for e in self.entries)
        raise ValueError(f"unknown FLOP view '{view}'; available: {', '.join(VIEWS)}")

    def summary(self) -> dict[str, float]:
        """The record fields of the record contract (docs/ARCHITECTURE.md, eval/records.py)."""
        return {
            "policy_prompt_tokens": self.tokens("policy", "prompt_tokens"),
            "policy_cached_tokens": self.tokens("policy", "cached_tokens"),
            "policy_generated_tokens": self.tokens("policy", "generated_tokens"),
            "prm_tokens": sum(e.prompt_tokens + e.generated_tokens for e in self.entries if e.role != "policy"),
            "flops_paper": self.flops("paper"),
            "flops_policy": self.flops("policy"),
            "flops_total": self.flops("total"),
        }

    def to_json(self) -> dict[str, Any]:
        return {"specs": {k: asdict(v) for k, v in self.specs.items()}, "entries": [asdict(e) for e in self.entries]}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> "Ledger":
        return cls({k: FlopSpec(**v) for k, v in d["specs"].items()}, [LedgerEntry(**e) for e in d["entries"]])
