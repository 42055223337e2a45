"""Incremental PRM scoring: a child path is scored by running only its new tokens on the KV of
the longest prefix already read, as the paper's reward server did on its prefix cache.

Why: in tree search the PRM input of a node at depth d is its parent's input plus one step, so
re-reading every path from the start costs O(d^2) tokens per leaf, more than the policy itself.
Every scored sequence's KV (per layer: kv_heads x length x head_dim) is kept in a byte-bounded
LRU store (rebase/backends/hf_cache.py, the policy's prefix store) together with the scores read
at its positions. A new sequence looks up the entry sharing its longest prefix; the scores at
positions inside that prefix are taken from the entry (a causal model's output at a position
depends only on the tokens up to it), and only the rest runs, on the cached KV. Sequences are
cut after their last read position (later tokens, e.g. a chat template's end-of-turn markup,
cannot change a causal model's scores). A sequence read before in full costs nothing.

The batch layout is the policy prefill's (rebase/backends/hf_decode.py): per row
    [padding][cached prefix KV, right-aligned][padding][uncached tail]
with a 2D attention mask and explicit position ids; rows are grouped so that tail padding stays
within 1/16 of the real tokens (padding is computed like real tokens, and the ledger prices real
tokens only). Reuse assumes a causal model: `check_causal` compares an incremental against a full
forward at load time, and a model that fails (a bidirectional encoder) scores by full re-reading.

    scorer = IncrementalScorer(model, pad_id, batch_tokens=65536, keep=True, capacity_bytes=1 << 30)
    got = scorer.run(seqs, positions, reduce)  # [(scores at positions, tokens served from cache)]
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Optional

import torch

from rebase.backends.hf_cache import KVEntry, PrefixKVCache
from rebase.backends.hf_decode import prefill_buckets
from rebase.backends.hf_kv import SlabLayer
from reward_models._hf import logits_at

Reduce = Callable[[torch.Tensor], torch.Tensor]


@dataclass
class _Job:
    """One sequence to score: `cached` leading tokens come from `entry`, the rest run."""

    index: int
    ids: list[int]
    positions: list[int]
    entry: Optional[KVEntry]
    cached: int
    known: dict[int, float]  # position -> score, from the entry

    @property
    def tail(self) -> int:
        return len(self.ids) - self.cached


class IncrementalScorer:
    """Scores token sequences at given positions, reusing the KV and scores of earlier ones."""

    def __init__(self, model: Any, pad_id: int, batch_tokens: int, keep: bool, capacity_bytes: int):
        self.model = model
        self.pad_id = int(pad_id)
        self.batch_tokens = int(batch_tokens)
        self.keep = keep
        self.store = PrefixKVCache(capacity_bytes)
        self.device = next(model.parameters()).device

    def forget(self) -> None:
        """Drop every stored read: the next search pays for its own PRM tokens."""
        self.store.clear()

    def _plan(self, i: int, ids: list[int], positions: list[int]) -> _Job:
        entry, n = self.store.longest_shared(ids)
        known = dict(entry.payload or {}) if entry is not None else {}
        missing = [p for p in positions if p < n and p not in known]
        if missing:  # the entry never read this position: recompute from there
            n = min(missing)
        return _Job(i, ids, positions, entry if n else None, n, {p: known[p] for p in positions if p < n})

    def run(self, seqs: list[list[int]], positions: list[list[int]], reduce: Reduce) -> list[tuple[torch.Tensor, int]]:
        """Per sequence (input order): (1-D float CPU scores at its positions, cached tokens)."""
        jobs = [self._plan(i, s, p) for i, (s, p) in enumerate(zip(seqs, positions))]
        scores: list[dict[int, float]] = [dict(j.known) for j in jobs]
        todo = [j for j in jobs if j.tail > 0 and j.positions]
        for part in prefill_buckets([j.tail for j in todo]):
            group = [todo[k] for k in part]
            for batch in self._split(group):
                self._forward(batch, reduce, scores)
        return [(torch.tensor([scores[j.index][p] for p in j.positions], dtype=torch.float32), j.cached) for j in jobs]

    def _split(self, group: list[_Job]) -> list[list[_Job]]:
        """Chunks of rows whose padded width (longest prefix + longest tail) fits batch_tokens."""
        out: list[list[_Job]] = []
        cur: list[_Job] = []
        wide = long = 0  # the chunk's longest prefix and tail so far (running maxima: groups hold thousands)
        for j in sorted(group, key=lambda j: (j.cached, j.index)):
            if cur and (len(cur) + 1) * (max(wide, j.cached) + max(long, j.tail)) > self.batch_tokens:
                out.append(cur)
                cur, wide, long = [], 0, 0
            cur.append(j)
            wide, long = max(wide, j.cached), max(long, j.tail)
        return out + ([cur] if cur else [])

    def _cache(self, batch: list[_Job], width: int, tail: int) -> Any:
        """Slabs holding each row's cached prefix right-aligned in `width` columns, room for `tail`."""
        from transformers import DynamicCache

        cache = DynamicCache()
        cache.layer_class_to_replicate = lambda: SlabLayer(None, None)
        if not width:
            return cache
        ref = next(j.entry for j in batch if j.entry is not None)
        # rows reading the same prefix (a problem's samples all start with its prompt) are filled
        # by one broadcast copy per layer, not one copy per row
        same: dict[tuple[int, int], list[int]] = {}
        for r, j in enumerate(batch):
            if j.cached:
                same.setdefault((id(j.entry), j.cached), []).append(r)
        fills = [(batch[rows[0]].entry, c, torch.tensor(rows, device=self.device)) for (_, c), rows in same.items()]
        layers = []
        for li in range(len(ref.keys)):
            slab = SlabLayer.empty(len(batch), ref.keys[li], ref.values[li], width + tail)
            slab.zero_columns(width)  # padding is masked, but never uninitialised memory (0 x NaN)
            for entry, c, rows in fills:
                slab.place_rows(rows, entry.keys[li][..., :c, :], entry.values[li][..., :c, :], width)
            slab.n = width
            layers.append(slab)
        cache.layers = layers
        return cache

    def _forward(self, batch: list[_Job], reduce: Reduce, scores: list[dict[int, float]]) -> None:
        width, tail = max(j.cached for j in batch), max(j.tail for j in batch)
        ids = torch.full((len(batch), tail), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(batch), width + tail), dtype=torch.long)
        pos = torch.zeros((len(batch), tail), dtype=torch.long)
        reads: list[list[tuple[int, int]]] = []  # per row: (position, tail column)
        for r, j in enumerate(batch):
            ids[r, tail - j.tail :] = torch.tensor(j.ids[j.cached :], dtype=torch.long)
            mask[r, width - j.cached : width] = 1
            mask[r, width + tail - j.tail :] = 1
            pos[r, tail - j.tail :] = torch.arange(j.cached, len(j.ids))
            reads.append([(p, tail - j.tail + p - j.cached) for p in j.positions if p >= j.cached])
        cache = self._cache(batch, width, tail)
        kw: dict[str, Any] = dict(
            input_ids=ids.to(self.device),
            attention_mask=mask.to(self.device),
            position_ids=pos.to(self.device),
            past_key_values=cache,
            use_cache=True,
        )
        with torch.no_grad():  # the head runs only where a score is read (reward_models/_hf.py)
            got = logits_at(self.model, kw, [[c for _, c in row] for row in reads], self.keep)
        for r, (j, row) in enumerate(zip(batch, reads)):
            if row:
                vals = reduce(got[r].float()).reshape(-1).cpu().tolist()
                scores[j.index].update({p: v for (p, _), v in zip(row, vals)})
            self._keep_kv(j, cache, r, mask[r], scores[j.index])

    def _keep_kv(self, job: _Job, cache: Any, r: int, mask_row: torch.Tensor, scores: dict[int, float]) -> None:
        cols = mask_row.nonzero(as_tuple=True)[0].to(self.device)
        # advanced indexing copies: the entry does not pin the batch's KV in memory
        keys = [layer.keys[r][..., cols, :] for layer in cache.layers]
        values = [layer.values[r][..., cols, :] for layer in cache.layers]
        self.store.insert(job.ids, keys, values, payload=dict(scores))


def check_causal(model: Any, pad_id: int, keep: bool, probe: list[int], tol: float = 1e-4) -> bool:
    """Whether scoring `probe` in two parts on cached KV gives the full forward's outputs (mean
    logit per position): False for a model whose outputs depend on later tokens, or that takes no
    KV cache."""
    if len(probe) < 4:
        return False
    reduce: Reduce = lambda rows: rows.mean(dim=-1)  # noqa: E731
    every = list(range(len(probe)))
    try:
        full = IncrementalScorer(model, pad_id, 1 << 20, keep, 1 << 30).run([probe], [every], reduce)[0][0]
        inc = IncrementalScorer(model, pad_id, 1 << 20, keep, 1 << 30)
        half = len(probe) // 2
        inc.run([probe[:half]], [every[:half]], reduce)
        got, cached = inc.run([probe], [every], reduce)[0]
    except (TypeError, ValueError, RuntimeError, AttributeError):
        return False
    return cached == half and bool(torch.allclose(full, got, atol=tol, rtol=0))
