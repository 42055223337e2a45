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
from rebase.backends.hf_kv import compaction_order
from rebase.backends.hf_sampling import sample_next
from rebase.types import Completion

Done = tuple[int, int, Completion]
OnDone = Callable[[list[Done]], list[Group]]


class LiveBatch:
    """The running rows of a continuous decode and their per-row tensors (one entry per row)."""

    FIELDS = ("mask", "logits", "next_pos", "temp", "top_p", "seeds", "sample_idx", "steps", "blk")

    def __init__(self, dec: BatchDecoder):
        self.dec = dec
        self.rows: list[Row] = []
        self.cache: Any = None  # the rows' KV; with cascade attention their own columns only
        # cascade attention (hf_cascade.py): each row reads its shared block (`blk`) from here
        self.blocks = Blocks(dec.pool) if dec.cascade else None
        self.cost = 0  # prompt + max new tokens over the live rows (the batch_tokens budget)
        for f in self.FIELDS:
            setattr(self, f, None)

    def admit(self, groups: list[Group]) -> None:
        """Prefill `groups` (one forward per length bucket) and join them to the running batch."""
        dec, dev = self.dec, self.dec.device
        rows = [
            Row(g, s, j == 0, window=max((len(x) for x in g.stops), default=0) + 8)
            for g in groups
            for j, s in enumerate(g.samples)
        ]
        extra = max([r.group.max_tokens - len(r.ids) for r in self.rows + rows])
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
            "temp": torch.tensor([r.group.temperature for r in rows], device=dev, dtype=torch.float32),
            "top_p": torch.tensor([r.group.top_p for r in rows], device=dev, dtype=torch.float32),
            "seeds": torch.tensor([r.group.seed for r in rows], device=dev, dtype=torch.long),
            "sample_idx": torch.tensor([r.sample for r in rows], device=dev, dtype=torch.long),
            "steps": torch.zeros(len(rows), device=dev, dtype=torch.long),
            "blk": blk,
        }
        self.cost += sum(g.cost for g in groups)
        if not self.rows:
            self.rows, self.cache = rows, cache
            for f in self.FIELDS:
                setattr(self, f, new[f])
            return
        shift = 0
        for live, fresh in zip(self.cache.layers, cache.layers):
            shift = live.admit(fresh.keys, fresh.values, extra)
            fresh.free()  # copied into the running slab: its buffers can serve the next admit
        width = self.mask.shape[1] + shift
        self.mask = torch.cat([self.mask.new_zeros((len(self.rows), shift)), self.mask], dim=1) if shift else self.mask
        pad = mask.new_zeros((len(rows), width - mask.shape[1]))
        new["mask"] = torch.cat([pad, mask], dim=1)
        self.rows = self.rows + rows
        for f in self.FIELDS:
            setattr(self, f, torch.cat([getattr(self, f), new[f]]))

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
    return results
