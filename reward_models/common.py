"""Shared machinery of the PRM families: token checks, length-bucketed batched forwards, score
validation and the token counts the FLOP ledger needs.

Every family turns a round of `ScoreRequest`s into token sequences plus the positions whose logits
give the step scores, then calls `forward_at`, which
- sorts the sequences by length and packs them into batches of at most `batch_tokens` padded
  tokens (so one long path does not pad a batch of short ones),
- right-pads them with an attention mask (positions and logits of the real tokens are then the
  same as when a sequence runs alone), and
- computes the output head only at the requested positions when the model allows it
  (`logits_to_keep`), since a full (batch, length, vocab) logit tensor dominates memory.
`check_scores` then enforces the protocol: exactly one finite score per step, or a PRMError naming
the request's tag, or `default_score` for the bad steps when `on_error: default`.
"""

from __future__ import annotations

import inspect
import math
from typing import Any, Callable, Optional, Sequence

from rebase.config import PRMConfig
from rebase.errors import BadInput, PRMError

Reduce = Callable[[Any], Any]  # (k, C) float32 logits at the k read positions -> (k,) scores


def token_id(tok: Any, key: str, text: str, path: str) -> int:
    """The single token id of `text`, looked up (never hard-coded) and checked.

    Sentencepiece tokenizers (Llama, Mistral) prefix a space to a string's start, so " ки" alone
    may encode as two pieces although after a word it is the one piece the model was trained on;
    the lookup therefore also tries `text` after a word.
    """
    if not text:
        raise BadInput(f"prm.{key}: must be a non-empty string")
    ids = tok.encode(text, add_special_tokens=False)
    if len(ids) == 1:
        return int(ids[0])
    base = tok.encode("a", add_special_tokens=False)
    ctx = tok.encode("a" + text, add_special_tokens=False)
    if len(ctx) == len(base) + 1 and ctx[: len(base)] == base:
        return int(ctx[-1])
    raise BadInput(f"prm.{key}: {text!r} is not a single token of {path}'s tokenizer (it splits into {len(ids)})")


def scrub(text: str, marker: str) -> str:
    """Remove the score marker from user or model text, so that a step that happens to contain it
    cannot create an extra score position."""
    return text.replace(marker, "") if marker else text


def max_length(model: Any) -> int:
    return int(getattr(model.config, "max_position_embeddings", None) or 1 << 30)


def left_truncate(ids: list[int], limit: int) -> tuple[list[int], bool]:
    """Keep the last `limit` tokens: the newest steps are the ones a search round needs scored."""
    return (ids[-limit:], True) if len(ids) > limit else (ids, False)


def length_buckets(lengths: Sequence[int], batch_tokens: int) -> list[list[int]]:
    """Indices grouped so that batch_size x longest length <= batch_tokens (a longer single
    sequence gets a batch of its own). Longest first, so the largest batch is met at once."""
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    batches: list[list[int]] = []
    cur: list[int] = []
    for i in order:
        longest = lengths[cur[0]] if cur else lengths[i]
        if cur and (len(cur) + 1) * longest > batch_tokens:
            batches.append(cur)
            cur = []
        cur.append(i)
    if cur:
        batches.append(cur)
    return batches


def takes_logits_to_keep(model: Any) -> bool:
    return "logits_to_keep" in inspect.signature(model.forward).parameters


def forward_at(
    model: Any,
    seqs: list[list[int]],
    positions: list[list[int]],
    reduce: Reduce,
    pad_id: int,
    batch_tokens: int,
    keep: bool,
) -> list[Any]:
    """For each sequence, `reduce` of the float32 logits at its `positions`; returned in input order
    as 1-D CPU tensors. `keep`: the model accepts `logits_to_keep` (a causal LM head)."""
    import torch

    from reward_models._hf import logits_at

    device = next(model.parameters()).device
    out: list[Any] = [None] * len(seqs)
    lengths = [len(s) for s in seqs]
    for batch in length_buckets(lengths, batch_tokens):
        width = max(lengths[i] for i in batch)
        ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        for r, i in enumerate(batch):
            ids[r, : lengths[i]] = torch.tensor(seqs[i], dtype=torch.long)
            mask[r, : lengths[i]] = 1
        kw: dict[str, Any] = {"input_ids": ids.to(device), "attention_mask": mask.to(device)}
        with torch.no_grad():
            got = logits_at(model, kw, [positions[i] for i in batch], keep)
        for i, rows in zip(batch, got):
            out[i] = reduce(rows.float()).reshape(-1).cpu() if positions[i] else torch.zeros(0)
    return out


def check_scores(
    cfg: PRMConfig, tag: str, raw: Optional[Sequence[float]], n_steps: int, truncated: bool = False
) -> list[float]:
    """Exactly `n_steps` finite scores, or PRMError / default_score per `cfg.on_error`.

    A count mismatch after left truncation means the first steps' markers were cut: the scores
    found belong to the last steps, and only the cut steps get the default. Any other mismatch
    cannot be aligned, so every step of that path gets the default.
    """
    vals = [float(x) for x in (raw if raw is not None else [])]
    if len(vals) != n_steps:
        why = f"PRM gave {len(vals)} scores for {n_steps} steps" + (" (the path was truncated)" if truncated else "")
        if cfg.on_error == "raise":
            raise PRMError(f"{tag}: {why}")
        if truncated and len(vals) < n_steps:
            vals = [cfg.default_score] * (n_steps - len(vals)) + vals
        else:
            vals = [cfg.default_score] * n_steps
    for k, v in enumerate(vals):
        if not math.isfinite(v):
            if cfg.on_error == "raise":
                raise PRMError(f"{tag}: PRM gave a non-finite score ({v}) for step {k + 1} of {n_steps}")
            vals[k] = cfg.default_score
    return vals


def request_tag(req: Any, index: int) -> str:
    return req.tag or f"request {index}"


def make_scorer(model: Any, tok: Any, cfg: PRMConfig, keep: bool) -> Any:
    """An IncrementalScorer (reward_models/kv_reuse.py) when `cfg.kv_reuse` is on and the model
    passes the causality check; None means every path is read in full."""
    if not cfg.kv_reuse:
        return None
    from reward_models.kv_reuse import IncrementalScorer, check_causal

    probe = list(tok("Start with 17. Add 25. Multiply by 3. The answer is 126.")["input_ids"])
    if not check_causal(model, tok.pad_token_id, keep, probe):
        return None
    return IncrementalScorer(model, tok.pad_token_id, cfg.batch_tokens, keep, cfg.kv_cache_bytes)


def readout(prm: Any, seqs: list[list[int]], positions: list[list[int]]) -> list[tuple[Any, int]]:
    """Per sequence: (1-D CPU tensor of `prm.reduce` at its positions, tokens served from cached KV).
    Empty sequences are not run."""
    import torch

    live = [i for i, s in enumerate(seqs) if s and positions[i]]
    out: list[tuple[Any, int]] = [(torch.zeros(0), 0)] * len(seqs)
    sub_s, sub_p = [seqs[i] for i in live], [positions[i] for i in live]
    if prm.scorer is not None:
        got = prm.scorer.run(sub_s, sub_p, prm.reduce)
    else:
        got = [
            (g, 0)
            for g in forward_at(
                prm.model, sub_s, sub_p, prm.reduce, prm.tok.pad_token_id, prm.cfg.batch_tokens, prm.keeps_logits
            )
        ]
    for i, g in zip(live, got):
        out[i] = g
    return out


def head_rows(positions: list[int], cached: int, length: int, plain_head: bool) -> int:
    """Output-head rows computed for one sequence: its read positions past the cached prefix (the
    scores inside it are stored), or every uncached position when the head is not a plain Linear."""
    if plain_head:
        return sum(p >= cached for p in positions)
    return max(length - cached, 0)


class MarkerPRM:
    """Base of the one-forward-per-path families (step_tag, mean_logit, token_classify): a path is
    rendered as text with a marker token after every step, and each marker position's output row
    gives that step's score. Subclasses set `marker`, `marker_id` and implement `text` and `reduce`.
    """

    role = "prm"
    marker: str = ""
    marker_id: int = -1

    def __init__(self, cfg: PRMConfig, kind: str):
        from reward_models._hf import flop_spec, load_model, load_tokenizer

        self.cfg = cfg
        self.name = cfg.name or cfg.path
        self.tok = load_tokenizer(cfg)
        self.model = load_model(cfg, kind)  # type: ignore[arg-type]
        self.flop_spec = flop_spec(self.model)
        self.max_length = max_length(self.model)
        self.keeps_logits = takes_logits_to_keep(self.model)
        from reward_models._hf import output_head

        # the head runs at the marker positions alone when it is a plain Linear (output_head)
        self._head = output_head(self.model) is not None
        self.scorer = make_scorer(self.model, self.tok, cfg, self.keeps_logits)

    def readout(self, seqs: list[list[int]], positions: list[list[int]]) -> list[tuple[Any, int]]:
        return readout(self, seqs, positions)

    def text(self, question: str, steps: list[str]) -> str:
        raise NotImplementedError

    def reduce(self, rows: Any) -> Any:
        raise NotImplementedError

    def add_special_tokens(self) -> bool:
        """Whether the tokenizer adds its special tokens (a BOS) to the rendered text: the text
        carries any chat markup itself; tokenizers that add a BOS do so here."""
        return True

    def encode(self, question: str, steps: list[str]) -> list[int]:
        return self.encode_many([self.text(question, steps)])[0]

    def encode_many(self, texts: list[str]) -> list[list[int]]:
        """Token ids of rendered paths, all in one tokenizer call (one call per path cost more than
        the PRM's own bookkeeping in small models' sweeps)."""
        return [list(x) for x in self.tok(texts, add_special_tokens=self.add_special_tokens())["input_ids"]]

    def score(self, requests: list[Any]) -> list[Any]:
        from reward_models.base import ScoreResult

        seqs, positions, cut = [], [], []
        texts = [self.text(r.question, r.steps) for r in requests]
        for req, enc in zip(requests, self.encode_many(texts) if texts else []):
            ids, truncated = left_truncate(enc, self.max_length)
            pos = [p for p, t in enumerate(ids) if t == self.marker_id] if req.steps else []
            # nothing after the last marker can change a causal model's scores: it is not read
            seqs.append(ids[: pos[-1] + 1] if pos else [])
            positions.append(pos)
            cut.append(truncated)
        got = self.readout(seqs, positions)
        return [
            ScoreResult(
                scores=check_scores(self.cfg, request_tag(r, i), got[i][0].tolist(), len(r.steps), cut[i]),
                prompt_tokens=len(seqs[i]),
                cached_tokens=got[i][1],
                head_rows=head_rows(positions[i], got[i][1], len(seqs[i]), self._head),
            )
            for i, r in enumerate(requests)
        ]
