"""Cascade attention for the transformers backend's decode: KV that many rows share is read once.

Why: decode attention on a CPU is bound by reading every row's keys and values, and the rows of one
problem share most of what they read: its prompt (instruction, few-shot examples, question). An
expanded cache holds and reads a copy of it per row; with a batch's matmuls near a core's peak, that
per-row read is what kept batching a search over problems from paying off (docs/PERFORMANCE.md:
attention cost the same per token batched or one problem at a time).

Here a row's context is split in two:
- its *block*: the root of its cached prefix chain (the prompt entry that a problem's tree search
  builds on, hf_decode.BatchDecoder.store_kv) or, for a prompt with no cached prefix, its group's
  own prefill. Rows with the same root (all of a problem's rows in a search round, all samples of
  a prompt) point at one block, held once in `Blocks`, one slab row per block;
- its *own* columns: the rest of its prompt and what it generates, in the running slab (hf_kv.py).
Each layer attends the blocks with their rows as one batch of queries (one read of a block per
step), the own columns row by row, and merges the two by their log-sum-exps. That is exact: the
softmax over the union of the columns. On 12 heads of 64 with 16 rows sharing a 250-token prompt,
a layer's decode attention took 27.6 ms expanded and 12.1 ms this way (one thread).

It runs as an attention function registered with transformers (NAME): the model's attention
modules call it with the query and the own-column KV the cache returns, it reads the blocks from
the step set around the forward (`Blocks.step`), and without a step (prefill) it is plain SDPA.
CPU only (torch's CPU flash attention returns the log-sum-exp it needs), for model types whose
attention is softmax over the whole cache (`supports`).

    blocks = Blocks(pool)
    mask, cache, blk = blocks.split(groups, index, mask, cache, extra)  # after a prefill
    with blocks.step(blk, mask):
        logits = model(...)                                               # one decode step
"""

from __future__ import annotations

import threading
from contextlib import contextmanager
from typing import Any, Iterator, Optional

import torch

from rebase.backends.hf_kv import SlabLayer, compaction_order
from rebase.backends.hf_pool import SlabPool

NAME = "rebase_cascade"
MODEL_TYPES = frozenset({"llama", "qwen2", "qwen3", "mistral"})
_local = threading.local()  # the step a forward runs in (one decoder per thread)


def _flash(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor, scale: Optional[float]):
    return torch.ops.aten._scaled_dot_product_flash_attention_for_cpu(q, k, v, attn_mask=mask, scale=scale)


def attention(module: Any, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, attention_mask: Any, **kw: Any):
    """The registered attention function: cascade inside a decode step, SDPA otherwise."""
    step = getattr(_local, "step", None)
    if step is None:
        from transformers.integrations.sdpa_attention import sdpa_attention_forward

        return sdpa_attention_forward(module, query, key, value, attention_mask, **kw)
    return step.attend(module.layer_idx, query, key, value, kw.get("scaling")), None


def register() -> None:
    """Make NAME an attention implementation of transformers (its masks are SDPA's)."""
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

    AttentionInterface.register(NAME, attention)
    AttentionMaskInterface.register(NAME, sdpa_mask)


def supports(model: Any) -> bool:
    """True for a CPU model whose attention layers are plain softmax attention over the cache."""
    cfg = model.config
    if next(model.parameters()).device.type != "cpu" or getattr(cfg, "model_type", None) not in MODEL_TYPES:
        return False
    if getattr(cfg, "sliding_window", None):
        return False
    return all(t == "full_attention" for t in (getattr(cfg, "layer_types", None) or ["full_attention"]))


def enable(model: Any) -> None:
    register()
    model.set_attn_implementation(NAME)


class Step:
    """One decode step's layout: which block each row reads, and the rows of a block as one
    query batch (`smax` slots per block; empty slots read a zero query and are dropped)."""

    def __init__(self, blocks: "Blocks", blk: torch.Tensor, own_mask: torch.Tensor, dtype: torch.dtype):
        self.blocks = blocks
        n_blocks, rows = blocks.count, len(blk)
        counts = torch.bincount(blk, minlength=n_blocks)
        self.smax = int(counts.max())
        order = torch.argsort(blk, stable=True)
        starts = torch.cumsum(counts, 0) - counts
        rank = torch.empty_like(blk)
        rank[order] = torch.arange(rows, device=blk.device) - starts[blk[order]]
        self.where = blk * self.smax + rank  # each row's slot
        self.slot = torch.full((n_blocks * self.smax,), rows, dtype=torch.long, device=blk.device)
        self.slot[self.where] = torch.arange(rows, device=blk.device)  # each slot's row (rows: none)
        self.own_mask = torch.zeros(own_mask.shape, dtype=dtype).masked_fill_(own_mask == 0, float("-inf"))
        self.own_mask = self.own_mask[:, None, None, :]
        self.block_mask = blocks.mask(dtype)

    def attend(self, layer: int, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, scale: Optional[float]):
        rows, heads, _, dim = query.shape
        kvh = key.shape[1]
        rep = heads // kvh
        q = query.reshape(rows, kvh, rep, dim)  # a kv head's query heads are one row's queries
        own, own_lse = _flash(q, key, value, self.own_mask, scale)
        bk, bv = self.blocks.layers[layer].keys, self.blocks.layers[layer].values
        nb, s = bk.shape[0], self.smax
        qb = torch.cat([q, q.new_zeros((1, kvh, rep, dim))]).index_select(0, self.slot)
        qb = qb.view(nb, s, kvh, rep, dim).permute(0, 2, 3, 1, 4).reshape(nb, kvh, rep * s, dim)
        shared, shared_lse = _flash(qb, bk, bv, self.block_mask, scale)
        shared = shared.view(nb, kvh, rep, s, dim).permute(0, 3, 1, 2, 4).reshape(nb * s, kvh, rep, dim)
        shared_lse = shared_lse.view(nb, kvh, rep, s).permute(0, 3, 1, 2).reshape(nb * s, kvh, rep)
        shared, shared_lse = shared.index_select(0, self.where), shared_lse.index_select(0, self.where)
        top = torch.maximum(own_lse, shared_lse)
        w_own, w_shared = (own_lse - top).exp_(), (shared_lse - top).exp_()
        out = (own * w_own[..., None] + shared * w_shared[..., None]) / (w_own + w_shared)[..., None]
        return out.to(query.dtype).reshape(rows, 1, heads, dim)


class Blocks:
    """The shared blocks of one continuous decode: one slab row per block, right-aligned."""

    def __init__(self, pool: Optional[SlabPool] = None):
        self.pool = pool
        self.layers: list[SlabLayer] = []
        self.keys: list[tuple[str, int]] = []  # per block: ("entry" | "group", id of its source)
        self.sources: list[tuple[list[torch.Tensor], list[torch.Tensor], Any]] = []  # per block: ks, vs, owner
        self.lengths: list[int] = []
        self.index: dict[tuple[str, int], int] = {}
        self._masks: dict[torch.dtype, torch.Tensor] = {}

    @property
    def count(self) -> int:
        return len(self.keys)

    def head(self, b: int) -> tuple[list[torch.Tensor], list[torch.Tensor], Any]:
        """Block b's KV per layer, (kv_heads, length, dim), and its owner (a KVEntry or a Group)."""
        return self.sources[b]

    def alias(self, b: int, entry: Any) -> None:
        """Rows whose prefix chain starts at `entry` (block b's tokens, now stored) read block b."""
        self.index[("entry", id(entry))] = b
        ks, vs, _ = self.sources[b]
        self.sources[b] = (ks, vs, entry)  # keeps the entry (and so its id) alive while b is

    def mask(self, dtype: torch.dtype) -> torch.Tensor:
        if dtype not in self._masks:
            width = self.layers[0].n
            cols = torch.arange(width)
            need = torch.tensor([width - n for n in self.lengths])
            m = torch.zeros((self.count, 1, 1, width), dtype=dtype)
            self._masks[dtype] = m.masked_fill_((cols[None, :] < need[:, None])[:, None, None, :], float("-inf"))
        return self._masks[dtype]

    @contextmanager
    def step(self, blk: torch.Tensor, own_mask: torch.Tensor) -> Iterator[None]:
        """Run a decode forward inside: attention reads the blocks (`Step`)."""
        _local.step = Step(self, blk, own_mask, self.layers[0].keys.dtype)
        try:
            yield
        finally:
            _local.step = None

    def _add(self, new: list[tuple[tuple[str, int], list[torch.Tensor], list[torch.Tensor], Any]]) -> None:
        width = max(ks[0].shape[-2] for _, ks, _, _ in new)
        for li in range(len(new[0][1])):
            ref_k, ref_v = new[0][1][li], new[0][2][li]
            fresh = SlabLayer.empty(len(new), ref_k, ref_v, width, self.pool)
            for r, (_, ks, vs, _) in enumerate(new):
                fresh.fill_prefix(r, ks[li], vs[li], width)
            fresh.n = width
            if li < len(self.layers):
                self.layers[li].admit(fresh.keys, fresh.values, 0)
                fresh.free()
            else:
                self.layers.append(fresh)
        for key, ks, vs, owner in new:
            self.index[key] = len(self.keys)
            self.keys.append(key)
            self.sources.append((ks, vs, owner))
            self.lengths.append(ks[0].shape[-2])
        self._masks.clear()

    def of_prefixes(self, groups: list[Any]) -> torch.Tensor:
        """The block of each group (every one with a cached prefix): its prefix chain's root,
        added as a new block when no running row reads it yet."""
        new: dict[tuple[str, int], tuple[list[torch.Tensor], list[torch.Tensor], Any]] = {}
        keys = []
        for g in groups:
            root = g.prefix.chain()[0]
            key = ("entry", id(root))
            if key not in self.index and key not in new:
                new[key] = (list(root.keys), list(root.values), root)
            keys.append(key)
        if new:
            self._add([(key, *src) for key, src in new.items()])
        return torch.tensor([self.index[k] for k in keys], dtype=torch.long)

    def split(
        self, groups: list[Any], index: torch.Tensor, mask: torch.Tensor, cache: Any, extra: int
    ) -> tuple[torch.Tensor, Any, torch.Tensor]:
        """From a prefill (one row per group, the layout of hf_decode.py) to the running form: the
        own mask and own-column cache with one row per sample (`index`: each sample's group, with
        `extra` free columns), and the block each sample reads. The prefill's slabs are freed."""
        from transformers import DynamicCache

        new: dict[tuple[str, int], tuple[list[torch.Tensor], list[torch.Tensor], Any]] = {}
        group_block, own_cols = [], []
        for gi, g in enumerate(groups):
            cols = mask[gi].nonzero(as_tuple=True)[0]
            root = g.prefix.chain()[0] if g.prefix is not None else None
            key = ("entry", id(root)) if root is not None else ("group", id(g))
            if key not in self.index and key not in new:
                if root is not None:
                    new[key] = (list(root.keys), list(root.values), root)
                else:  # the whole prompt is the block: copied out of the prefill, which is freed
                    ks = [layer.keys[gi][:, cols] for layer in cache.layers]
                    vs = [layer.values[gi][:, cols] for layer in cache.layers]
                    new[key] = (ks, vs, g)
            group_block.append(key)
            own_cols.append(cols[(root.length if root is not None else len(g.prompt)) :])
        if new:
            self._add([(key, *src) for key, src in new.items()])
        blk_of_group = torch.tensor([self.index[k] for k in group_block], dtype=torch.long)
        width = max(len(c) for c in own_cols)
        rows = len(index)
        col = torch.zeros((len(groups), width), dtype=torch.long)
        own_mask = torch.zeros((len(groups), width), dtype=torch.long)
        for gi, c in enumerate(own_cols):
            if len(c):
                col[gi, width - len(c) :] = c
                own_mask[gi, width - len(c) :] = 1
        own_mask, col, grp = own_mask[index], col[index], index[:, None]
        layers = []
        for layer in cache.layers:
            k, v = layer.keys, layer.values
            slab = SlabLayer.empty(rows, k[0], v[0], width + extra, self.pool)
            if width:
                pad = (own_mask == 0)[:, None, :, None]
                every = torch.arange(rows)
                own_k = k[grp, :, col].permute(0, 2, 1, 3).masked_fill_(pad, 0)
                slab.place_rows(every, own_k, v[grp, :, col].permute(0, 2, 1, 3).masked_fill_(pad, 0), width)
            slab.n = width
            layers.append(slab)
            layer.free()
        own = DynamicCache()
        own.layers = layers
        return own_mask.to(mask.device), own, blk_of_group[index]

    def prune(self, blk: torch.Tensor) -> torch.Tensor:
        """Drop blocks no row reads any more (their rows finished); returns `blk` renumbered."""
        counts = torch.bincount(blk, minlength=self.count).tolist()
        dead = {b for b, c in enumerate(counts) if c == 0}
        if not dead:
            return blk
        order, holes, movers = compaction_order(self.count, dead)
        h, m = torch.tensor(holes, dtype=torch.long), torch.tensor(movers, dtype=torch.long)
        for layer in self.layers:
            layer.move_rows(h, m, len(order))
        renumber = torch.full((len(counts),), -1, dtype=torch.long)
        renumber[torch.tensor(order, dtype=torch.long)] = torch.arange(len(order))
        self.index = {k: int(renumber[b]) for k, b in self.index.items() if b not in dead}  # aliases too
        self.keys = [self.keys[b] for b in order]
        self.sources = [self.sources[b] for b in order]
        self.lengths = [self.lengths[b] for b in order]
        first = self.layers[0].n - max(self.lengths)
        if first:
            for layer in self.layers:
                layer.drop_front(first)
        self._masks.clear()
        return renumber[blk]

    def free(self) -> None:
        for layer in self.layers:
            layer.free()
        self.layers = []
