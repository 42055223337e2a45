"""Continuous batching for the transformers backend: a finished row's slot goes to the next waiting
request, so the decode batch stays full instead of shrinking until the slowest row ends.

Why: in tree search a round's rows end their step after ~20 tokens but the batch decodes until
the longest step ends (the step cap), so late decode steps run at a small batch, where a matmul
row costs ~2x more on a CPU and a GPU idles. Here requests wait in a queue bounded by
`batch_tokens` (prompt + max new tokens per row, as for the whole batches of hf.py); whenever
rows finish, waiting groups are prefilled (one forward, the layout of hf_decode.py) and their KV
is appended to the running slabs, aligned so that the next decode step writes every row's token
at the same column (SlabLayer.admit, hf_kv.py). `on_done` sees every finished sample and may return new
groups (a search whose round is complete submits its next round without waiting for the others).

A group whose prompt is cached but for its last token (every tree-search child: its prompt is its
parent's ids, whose KV the parent stored) is not prefilled: it joins as one pending row holding
its cached KV, which feeds that last token in the next decode step beside the running rows, and is
then copied to each of its samples. A round of children thus costs no forward of its own (a
forward reads every weight however few its tokens), and with cascade attention no copy of its
prompt's KV; the token is computed once per group, as the FLOP ledger prices it.

With cascade attention (CPU, hf_cascade.py) a group's prefill is split instead of copied per
sample: the KV its rows share (their problem's prompt entry, or the group's whole prompt) goes to
a block read once per step for all of them, the rest to each row's own columns in the slab.

Results do not depend on the batching: sampling noise is keyed by (seed, sample, tokens the row
has generated), never by the step of the batch (hf_sampling.py).

    for req, sample, completion in stream(decoder, groups, budget=65536, on_done=None): ...
"""

from __future__ import annotations

from collections import deque
from typing import Any, Callable, Optional

import torch

from rebase.backends.hf_cascade import Blocks
from rebase.backends.hf_decode import BatchDecoder, Group, Row
from rebase.backends.hf_kv import SlabLayer, compaction_order
from rebase.backends.hf_sampling import sample_next
from rebase.types import Completion

Done = tuple[int, int, Completion]
OnDone = Callable[[list[Done]], list[Group]]


class LiveBatch:
    """The running rows of a continuous decode and their per-row tensors (one entry per row)."""

    PENDING = True  # children join as pending rows (False: prefilled like any group)
    FIELDS = ("mask", "logits", "next_pos", "temp", "top_p", "seeds", "sample_idx", "steps", "blk", "feed")

    def __init__(self, dec: BatchDecoder):
        self.dec = dec
        self.rows: list[Row] = []
        self.cache: Any = None  # the rows' KV; with cascade attention their own columns only
        # cascade attention (hf_cascade.py): each row reads its shared block (`blk`) from here
        self.blocks = Blocks(dec.pool) if dec.cascade else None
        self.cost = 0  # prompt + max new tokens over the live rows (the batch_tokens budget)
        self.pending = 0  # rows that feed their prompt's last token at the next step (`feed`)
        for f in self.FIELDS:
            setattr(self, f, None)

    def admit(self, groups: list[Group]) -> None:
        """Join `groups` to the running batch. A group whose prompt is cached but for its last token
        (a tree-search child) joins as one pending row that feeds that token in the next decode
        step; the others are prefilled (one forward per length bucket)."""
        pending = [self.PENDING and g.prefix is not None and len(g.prompt) - g.cached == 1 for g in groups]
        direct = [g for g, p in zip(groups, pending) if p]
        rest = [g for g, p in zip(groups, pending) if not p]
        if rest:
            self._join(rest, *self._prefilled(rest))
        if direct:
            self._join(direct, *self._pending(direct))

    def _extra(self, rows: list[Row]) -> int:
        """Free columns a slab needs after its last written one (the most any row may still feed)."""
        return max([r.group.max_tokens - len(r.ids) for r in self.rows + rows])

    def _prefilled(self, groups: list[Group]) -> tuple[list[Row], dict[str, torch.Tensor], Any, int, int]:
        """Prefill `groups`, one row per sample: rows, per-row fields, KV, free columns kept."""
        dec, dev = self.dec, self.dec.device
        rows = [
            Row(g, s, j == 0, window=max((len(x) for x in g.stops), default=0) + 8)
            for g in groups
            for j, s in enumerate(g.samples)
        ]
        extra = self._extra(rows)
        logits, mask, cache = dec.prefill(groups, 0 if self.rows else extra)
        index = torch.tensor([i for i, g in enumerate(groups) for _ in g.samples], device=dev)
        blk = torch.zeros(len(rows), dtype=torch.long, device=dev)
        if self.blocks is not None:  # the shared part to the blocks, each sample's own part to its row
            logits = logits[index]
            mask, cache, blk = self.blocks.split(groups, index, mask, cache, 0 if self.rows else extra)
        elif len(rows) != len(groups):  # each group's prefill shared by its samples: one copy
            mask, logits = mask[index], logits[index]
            for layer in cache.layers:
                layer.batch_select_indices(index)
        new = {
            "mask": mask,
            "logits": logits,
            "next_pos": torch.tensor([len(r.group.prompt) for r in rows], device=dev, dtype=torch.long),
            "sample_idx": torch.tensor([r.sample for r in rows], device=dev, dtype=torch.long),
            "blk": blk,
            "feed": torch.full((len(rows),), -1, device=dev, dtype=torch.long),
        }
        return rows, new, cache, extra, 0

    def _pending(self, groups: list[Group]) -> tuple[list[Row], dict[str, torch.Tensor], Any, int, int]:
        """One row per group holding its cached KV (with cascade attention: past its block), to
        feed the prompt's last token in the next decode step, which gives the group's first
        logits; `expand` then copies the row to each sample. Why: a tree-search round's children
        then cost no prefill forward (a forward reads every weight, however few its tokens), and
        a problem's next round joins a running decode at no cost but the copy of its KV."""
        from transformers import DynamicCache

        dec, dev = self.dec, self.dec.device
        rows = [
            Row(g, g.samples[0], True, window=max((len(x) for x in g.stops), default=0) + 8, pending=True)
            for g in groups
        ]
        extra = self._extra(rows)
        chains = [g.prefix.chain() for g in groups]  # once, not per layer
        if self.blocks is not None:
            blk = self.blocks.of_prefixes(groups).to(dev)
            skip = [chain[0].length for chain in chains]  # the root: read as the block
        else:
            blk = torch.zeros(len(groups), dtype=torch.long, device=dev)
            skip = [0] * len(groups)
        spare = sum(len(g.samples) - 1 for g in groups)  # rows `expand` adds
        own = [g.cached - s for g, s in zip(groups, skip)]
        width = max(own)
        ref = groups[0].prefix
        layers = []
        for li in range(len(ref.keys)):
            slab = SlabLayer.empty(
                len(groups), ref.keys[li], ref.values[li], width + (0 if self.rows else extra), dec.pool, spare
            )
            for i, (chain, s) in enumerate(zip(chains, skip)):
                segments = [(e.start - s, e.keys[li], e.values[li]) for e in chain if e.start >= s]
                if segments:
                    slab.fill_segments(i, segments, width)
                else:
                    slab.fill_prefix(i, None, None, width)
            slab.n = width
            layers.append(slab)
        cache = DynamicCache()
        cache.layers = layers
        mask = torch.zeros((len(groups), width), dtype=torch.long)
        for i, c in enumerate(own):
            mask[i, width - c :] = 1
        new = {
            "mask": mask.to(dev),
            "logits": torch.zeros(
                (len(groups), dec.vocab), device=dev, dtype=torch.float32 if self.logits is None else self.logits.dtype
            ),
            "next_pos": torch.tensor([g.cached for g in groups], device=dev, dtype=torch.long),
            "sample_idx": torch.tensor([g.samples[0] for g in groups], device=dev, dtype=torch.long),
            "blk": blk,
            "feed": torch.tensor([g.prompt[-1] for g in groups], device=dev, dtype=torch.long),
        }
        self.pending += len(rows)
        return rows, new, cache, extra, spare

    def _join(
        self, groups: list[Group], rows: list[Row], new: dict[str, torch.Tensor], cache: Any, extra: int, spare: int = 0
    ) -> None:
        """Append prepared rows (their fields, their KV right-aligned) to the running batch."""
        dev = self.dec.device
        new["temp"] = torch.tensor([r.group.temperature for r in rows], device=dev, dtype=torch.float32)
        new["top_p"] = torch.tensor([r.group.top_p for r in rows], device=dev, dtype=torch.float32)
        new["seeds"] = torch.tensor([r.group.seed for r in rows], device=dev, dtype=torch.long)
        new["steps"] = torch.zeros(len(rows), device=dev, dtype=torch.long)
        self.cost += sum(g.cost for g in groups)
        if not self.rows:
            self.rows, self.cache = rows, cache
            for f in self.FIELDS:
                setattr(self, f, new[f])
            return
        shift = 0
        for live, fresh in zip(self.cache.layers, cache.layers):
            shift = live.admit(fresh.keys, fresh.values, extra, spare)
            fresh.free()  # copied into the running slab: its buffers can serve the next admit
        width = self.mask.shape[1] + shift
        self.mask = torch.cat([self.mask.new_zeros((len(self.rows), shift)), self.mask], dim=1) if shift else self.mask
        pad = new["mask"].new_zeros((len(rows), width - new["mask"].shape[1]))
        new["mask"] = torch.cat([pad, new["mask"]], dim=1)
        self.rows = self.rows + rows
        for f in self.FIELDS:
            setattr(self, f, torch.cat([getattr(self, f), new[f]]))

    def expand(self) -> None:
        """After a step that fed pending rows their prompt's last token: copy each such row (KV,
        logits, fields) to every other sample of its group."""
        if not self.pending:
            return
        src, rows = [], []
        for i, r in enumerate(self.rows):
            if r.pending:
                r.pending = False
                self.steps[i] = 0  # the fed token was the prompt's, not a generated one
                src += [i] * (len(r.group.samples) - 1)
                rows += [Row(r.group, s, False, window=r.window) for s in r.group.samples[1:]]
        self.feed.fill_(-1)
        self.pending = 0
        if not src:
            return
        index = torch.tensor(src, device=self.dec.device)
        for layer in self.cache.layers:
            layer.copy_rows(index)
        for f in self.FIELDS:
            setattr(self, f, torch.cat([getattr(self, f), getattr(self, f)[index]]))
        self.sample_idx[-len(rows) :] = torch.tensor([r.sample for r in rows], device=self.dec.device)
        self.rows = self.rows + rows

    def drop(self, dead: set[int]) -> list[int]:
        """Remove finished rows: live rows from the end fill the holes (hf_kv.py). Returns the new
        row order (old indices)."""
        self.cost -= sum(len(self.rows[i].group.prompt) + self.rows[i].group.max_tokens for i in dead)
        if len(dead) == len(self.rows):
            self.rows, self.cache = [], None
            if self.blocks is not None:
                self.blocks.free()
                self.blocks = Blocks(self.dec.pool)
            return []
        dev = self.dec.device
        order, holes, movers = compaction_order(len(self.rows), dead)
        h, m = torch.tensor(holes, device=dev), torch.tensor(movers, device=dev)
        for layer in self.cache.layers:
            layer.move_rows(h, m, len(order))
        keep = torch.tensor(order, device=dev)
        self.rows = [self.rows[i] for i in order]
        for f in self.FIELDS:
            setattr(self, f, getattr(self, f)[keep])
        self.mask = self.dec.trim(self.cache, self.mask)
        if self.blocks is not None:
            self.blk = self.blocks.prune(self.blk)
        return order

    def decode(self, tokens: torch.Tensor) -> None:
        """Feed every live row its newest token: one forward, next logits."""
        self.steps = self.steps + 1
        self.mask = torch.cat([self.mask, self.mask.new_ones((len(self.rows), 1))], dim=1)
        if self.blocks is None:
            self.logits = self.dec.forward(tokens[:, None], self.mask, self.next_pos[:, None], self.cache)
        else:
            with self.blocks.step(self.blk, self.mask):
                self.logits = self.dec.forward(tokens[:, None], self.mask, self.next_pos[:, None], self.cache)
        self.next_pos = self.next_pos + 1

    def store(self, i: int) -> None:
        """Keep row i's KV in the decoder's prefix store (its block's part, then its own)."""
        head = self.blocks.head(int(self.blk[i])) if self.blocks is not None else None
        entry = self.dec.store_kv(self.rows[i], self.cache, i, self.mask[i], head)
        if entry is not None and self.blocks is not None:
            self.blocks.alias(int(self.blk[i]), entry)


def stream(
    dec: BatchDecoder, groups: list[Group], budget: Optional[int], on_done: Optional[OnDone] = None
) -> list[Done]:
    """Decode `groups` (and whatever `on_done` adds) with continuous batching; every completion."""
    queue = deque(groups)
    live = LiveBatch(dec)
    results: list[Done] = []
    while queue or live.rows:
        joining: list[Group] = []
        while queue and (
            not (live.rows or joining)
            or budget is None
            or live.cost + sum(g.cost for g in joining) + queue[0].cost <= budget
        ):
            joining.append(queue.popleft())
        if joining:
            live.admit(joining)
        tokens = sample_next(live.logits, live.temp, live.top_p, live.seeds, live.sample_idx, live.steps)
        if live.pending:  # pending rows feed their prompt's last token, they sample nothing yet
            tokens = torch.where(live.feed >= 0, live.feed, tokens)
        finished = dec.advance(live.rows, tokens.tolist())
        done = []
        for i, reason, stop in finished:
            done.append(dec.complete(live.rows[i], reason, stop))
            if dec.store is not None:
                live.store(i)
        results.extend(done)
        if finished:
            order = live.drop({f[0] for f in finished})
            if order:
                tokens = tokens[torch.tensor(order, device=dec.device)]
            if on_done is not None:
                queue.extend(on_done(done))
        if live.rows:
            live.decode(tokens)
            live.expand()
    return results
