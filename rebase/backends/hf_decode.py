"""The batched decode loop of the transformers backend: one prefill, then one forward per step.

A batch is a list of `Group`s; a group is one request's samples that share ONE prefill of the
prompt. The prefill batch is laid out per row as
    [padding][cached prefix KV (right-aligned in the past)][padding][uncached prompt tail]
with a 2D attention mask that hides every padding column and explicit position ids, so rows with
different cached and uncached lengths share a forward. Only the last position's logits are computed
(logits_to_keep=1), as the FLOP ledger prices it. The prefill KV is then expanded to one row per
sample, into slabs that decode steps append to in place (hf_kv.py); every decode step feeds each
live row its last token. Finished rows leave the batch (live rows from its end move into their
places, and columns that became all-padding are trimmed), so a finished sample costs nothing more.

Finishing follows vLLM: an EOS id ends with "eos" (kept in token_ids, not in text); a stop string in
the generated text ends with "stop" (text cut before it, token_ids keep every id); max_tokens gives
"length". Stop strings are detected on a decoded window of the last ids each step; the final text
is decoded from the whole id list, so multi-byte characters are never split.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

import torch
from tokenizers import Tokenizer

from rebase.backends.hf_cache import KVEntry, PrefixKVCache
from rebase.backends.hf_kv import SlabLayer, compaction_order
from rebase.backends.hf_pool import SlabPool
from rebase.backends.hf_sampling import sample_next
from rebase.types import Completion

_DECODE = {"skip_special_tokens": True, "clean_up_tokenization_spaces": False}
Head = tuple[list[torch.Tensor], list[torch.Tensor], Any]  # a cascade block's keys, values (per layer), owner


def decode_many(tok: Any, seqs: list[list[int]]) -> list[str]:
    """`tok.batch_decode(seqs, **_DECODE)`, straight through the Rust tokenizer when there is one:
    the Python wrapper converts and checks every id of every sequence, which cost more than the
    decoding itself in small models' sweeps (it runs on every live row at every step)."""
    backend = getattr(tok, "_tokenizer", None)
    if isinstance(backend, Tokenizer):
        return backend.decode_batch(seqs, skip_special_tokens=True)
    return tok.batch_decode(seqs, **_DECODE)


@dataclass
class Group:
    """Samples `samples` of request `request`, sharing one prefill of `prompt`."""

    request: int
    prompt: list[int]
    samples: list[int]
    max_tokens: int
    temperature: float
    top_p: float
    seed: int
    stops: tuple[str, ...] = ()
    prefix: Optional[KVEntry] = None  # cached KV covering prompt[:prefix.length]

    @property
    def cached(self) -> int:
        return self.prefix.length if self.prefix is not None else 0

    @property
    def cost(self) -> int:
        """Tokens this group may hold in a batch: prompt + max new tokens per sample."""
        return (len(self.prompt) + self.max_tokens) * len(self.samples)


@dataclass
class Row:
    group: Group
    sample: int
    pays_prefill: bool  # the first sample of a group is charged for the prompt; the rest share it
    ids: list[int] = field(default_factory=list)
    window: int = 0  # ids to decode when checking for stop strings
    pending: bool = False  # feeds its prompt's last token at the next step (hf_stream.LiveBatch)


def prefill_buckets(tails: list[int], slack: float = 1 / 16) -> list[list[int]]:
    """Indices grouped (shortest tail first) so that each bucket's padding is at most `slack` of
    its real tokens: the padding FLOPs stay small and the ledger, which prices real tokens only,
    stays within a few percent of what is computed."""
    order = sorted(range(len(tails)), key=lambda i: (tails[i], i))
    parts: list[list[int]] = []
    total = 0
    for i in order:
        if parts and (len(parts[-1]) + 1) * tails[i] - (total + tails[i]) <= slack * (total + tails[i]):
            parts[-1].append(i)
            total += tails[i]
        else:
            parts.append([i])
            total = tails[i]
    return parts


class BatchDecoder:
    """Runs one batch of groups to completion; stores finished sequences' KV in `store`."""

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        eos_ids: set[int],
        pad_id: int,
        store: Optional[PrefixKVCache] = None,
        pool: Optional[SlabPool] = None,
    ):
        self.model = model
        self.pool = pool  # slab buffers reused across calls (hf_pool.py); None: fresh tensors
        self.tok = tokenizer
        self.eos_ids = eos_ids
        self.pad_id = pad_id
        self.store = store
        self.device = next(model.parameters()).device
        self.keep_last = True  # compute only the last position's logits (what the ledger prices)
        self.cascade = False  # continuous decodes read shared prompt KV once (hf_cascade.py)

    @property
    def vocab(self) -> int:
        """Logits per row (the output layer's size)."""
        return int(self.model.get_output_embeddings().weight.shape[0])

    def forward(self, input_ids: torch.Tensor, mask: torch.Tensor, pos: torch.Tensor, cache: Any) -> torch.Tensor:
        kw = dict(input_ids=input_ids, attention_mask=mask, position_ids=pos, past_key_values=cache, use_cache=True)
        if self.keep_last:
            try:
                return self.model(**kw, logits_to_keep=1).logits[:, -1, :]
            except TypeError as e:  # remote-code models without logits_to_keep: full logits, then slice
                if "logits_to_keep" not in str(e):
                    raise
                self.keep_last = False
        return self.model(**kw).logits[:, -1, :]

    def prefill(self, groups: list[Group], extra: int = 0) -> tuple[torch.Tensor, torch.Tensor, Any]:
        """Last-position logits, attention mask and KV cache (slabs with room for `extra` more
        tokens), one row per group. Groups whose
        uncached tails differ much in length are prefilled in separate forwards (padding would be
        computed like real tokens), then their caches are right-aligned into one."""
        from transformers import DynamicCache

        parts = prefill_buckets([len(g.prompt) - g.cached for g in groups])
        if len(parts) == 1:
            return self.prefill_part(groups, extra)
        outs = [self.prefill_part([groups[i] for i in p], 0) for p in parts]
        width = max(m.shape[1] for _, m, _ in outs)
        logits = outs[0][0].new_empty((len(groups), outs[0][0].shape[-1]))
        mask = outs[0][1].new_zeros((len(groups), width))
        layers = []
        for li, ref in enumerate(outs[0][2].layers):
            slab = SlabLayer.empty(len(groups), ref.keys[0], ref.values[0], width + extra, self.pool)
            slab.zero_columns(width)
            for p, (_, m, c) in zip(parts, outs):
                slab.place_rows(torch.tensor(p, device=self.device), c.layers[li].keys, c.layers[li].values, width)
                c.layers[li].free()
            slab.n = width
            layers.append(slab)
        for p, (lg, m, _) in zip(parts, outs):
            rows = torch.tensor(p, device=self.device)
            logits[rows] = lg
            mask[rows, width - m.shape[1] :] = m
        cache = DynamicCache()
        cache.layers = layers
        return logits, mask, cache

    def prefill_part(self, groups: list[Group], extra: int) -> tuple[torch.Tensor, torch.Tensor, Any]:
        from transformers import DynamicCache

        cached = [g.cached for g in groups]
        tails = [len(g.prompt) - c for g, c in zip(groups, cached)]
        lp, lu = max(cached), max(tails)
        ids = torch.full((len(groups), lu), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(groups), lp + lu), dtype=torch.long)
        pos = torch.zeros((len(groups), lu), dtype=torch.long)
        for i, (g, c, u) in enumerate(zip(groups, cached, tails)):
            ids[i, lu - u :] = torch.tensor(g.prompt[c:], dtype=torch.long)
            mask[i, lp - c : lp] = 1
            mask[i, lp + lu - u :] = 1
            pos[i, lu - u :] = torch.arange(c, len(g.prompt))
        # slabs from the start: cached prefixes are copied once, straight into place, and the
        # forward appends the tail in place (DynamicLayer would copy everything again with cat)
        cache = DynamicCache()
        cache.layer_class_to_replicate = lambda: SlabLayer(None, None, extra=lu + extra, pool=self.pool)
        if lp:
            ref = next(g.prefix for g in groups if g.prefix is not None)
            layers = []
            for layer in range(len(ref.keys)):
                slab = SlabLayer.empty(len(groups), ref.keys[layer], ref.values[layer], lp + lu + extra, self.pool)
                for i, (g, c) in enumerate(zip(groups, cached)):
                    if c:
                        slab.fill_segments(i, g.prefix.segments(layer), lp)
                    else:
                        slab.fill_prefix(i, None, None, lp)
                slab.n = lp
                layers.append(slab)
            cache.layers = layers
        mask = mask.to(self.device)
        logits = self.forward(ids.to(self.device), mask, pos.to(self.device), cache)
        return logits, mask, cache

    def run(self, groups: list[Group]) -> list[tuple[int, int, Completion]]:
        """(request index, sample index, completion) for every sample of every group."""
        extra = max(g.max_tokens for g in groups)
        logits, mask, cache = self.prefill(groups, extra)
        rows = [
            Row(g, s, j == 0, window=max((len(x) for x in g.stops), default=0) + 8)
            for g in groups
            for j, s in enumerate(g.samples)
        ]
        index = torch.tensor([i for i, g in enumerate(groups) for _ in g.samples], device=self.device)
        if len(rows) != len(groups):  # share each group's prefill among its samples: one copy
            mask, logits = mask[index], logits[index]
            for layer in cache.layers:
                layer.batch_select_indices(index)
        dev = self.device
        temp = torch.tensor([r.group.temperature for r in rows], device=dev, dtype=torch.float32)
        top_p = torch.tensor([r.group.top_p for r in rows], device=dev, dtype=torch.float32)
        seeds = torch.tensor([r.group.seed for r in rows], device=dev, dtype=torch.long)
        sample_idx = torch.tensor([r.sample for r in rows], device=dev, dtype=torch.long)
        next_pos = torch.tensor([len(r.group.prompt) for r in rows], device=dev, dtype=torch.long)
        results: list[tuple[int, int, Completion]] = []
        step = 0
        while True:
            tokens = sample_next(logits, temp, top_p, seeds, sample_idx, step)
            finished = self.advance(rows, tokens.tolist())
            for i, reason, stop in finished:
                results.append(self.complete(rows[i], reason, stop))
                if self.store is not None:
                    self.store_kv(rows[i], cache, i, mask[i])
            if finished:
                if len(finished) == len(rows):
                    return results
                # live rows from the end fill the holes: only they are copied (hf_kv.py)
                order, holes, movers = compaction_order(len(rows), {i for i, _, _ in finished})
                h, m = torch.tensor(holes, device=dev), torch.tensor(movers, device=dev)
                for layer in cache.layers:
                    layer.move_rows(h, m, len(order))
                keep = torch.tensor(order, device=dev)
                rows = [rows[i] for i in order]
                mask, tokens, next_pos = mask[keep], tokens[keep], next_pos[keep]
                temp, top_p, seeds, sample_idx = temp[keep], top_p[keep], seeds[keep], sample_idx[keep]
                mask = self.trim(cache, mask)
            step += 1
            mask = torch.cat([mask, mask.new_ones((len(rows), 1))], dim=1)
            logits = self.forward(tokens[:, None], mask, next_pos[:, None], cache)
            next_pos = next_pos + 1

    def advance(self, rows: list[Row], tokens: list[int]) -> list[tuple[int, str, Optional[str]]]:
        """Append each row's new token; return (row, finish_reason, stop string) for rows that end."""
        finished: list[tuple[int, str, Optional[str]]] = []
        to_check: list[int] = []
        for i, (row, t) in enumerate(zip(rows, tokens)):
            if row.pending:
                continue
            row.ids.append(t)
            if t in self.eos_ids:
                finished.append((i, "eos", None))
            elif row.group.stops:
                to_check.append(i)
            elif len(row.ids) >= row.group.max_tokens:
                finished.append((i, "length", None))
        if to_check:
            texts = decode_many(self.tok, [rows[i].ids[-rows[i].window :] for i in to_check])
            for i, text in zip(to_check, texts):
                stop = next((s for s in rows[i].group.stops if s in text), None)
                if stop is not None:
                    finished.append((i, "stop", stop))
                elif len(rows[i].ids) >= rows[i].group.max_tokens:
                    finished.append((i, "length", None))
        return finished

    def complete(self, row: Row, reason: str, stop: Optional[str]) -> tuple[int, int, Completion]:
        g = row.group
        if reason == "eos":
            text = decode_many(self.tok, [row.ids[:-1]])[0]
        else:
            text = decode_many(self.tok, [row.ids])[0]
            if stop is not None and (cut := text.find(stop)) >= 0:
                text = text[:cut]
        done = Completion(
            text=text,
            token_ids=list(row.ids),
            finish_reason=reason,
            prompt_tokens=len(g.prompt),
            cached_tokens=g.cached if row.pays_prefill else len(g.prompt),
            generated_tokens=len(row.ids),
            stop_reason=stop,
        )
        return g.request, row.sample, done

    def store_kv(self, row: Row, cache: Any, r: int, mask_row: torch.Tensor, head: Optional[Head] = None) -> Any:
        """Keep the KV of everything the row fed (prompt + generated ids but the last one). With
        cascade attention (hf_cascade.py) `cache` holds the row's own columns and `head` its
        block's KV (the first tokens of the prompt) and owner. Returns the prompt entry stored for
        a group with no cached prefix (so that later rows build on it and read it as a block)."""
        cols = mask_row.nonzero(as_tuple=True)[0]
        ids = row.group.prompt + row.ids[:-1]
        shared = head[0][0].shape[-2] if head is not None else 0
        if shared + cols.numel() != len(ids):
            raise RuntimeError(f"KV bookkeeping: {shared + cols.numel()} cached columns for {len(ids)} tokens")
        # on top of the prompt's cached entry (while stored), keep only the columns after it: a tree
        # search child then copies its step, not its whole path again
        base, stored = row.group.prefix, None
        if head is not None and base is None and len(ids) > len(row.group.prompt):
            # the block is this group's whole prompt: store it once (no copy, the block's tensors),
            # so the group's rows build on it and the next round's rows share it as their block
            self.store.insert(row.group.prompt, head[0], head[1])
            base = stored = self.store.get(row.group.prompt)
        if base is not None and self.store.holds(base) and base.length < len(ids):
            cols = cols[base.length - shared :]
        elif shared:  # no base: the block's columns and then the row's own
            keys = [torch.cat([k, layer.keys[r][..., cols, :]], dim=-2) for k, layer in zip(head[0], cache.layers)]
            values = [torch.cat([v, layer.values[r][..., cols, :]], dim=-2) for v, layer in zip(head[1], cache.layers)]
            self.store.insert(ids, keys, values)
            return stored
        else:
            base = None
        # copies, so the entry does not pin the whole batch's KV in memory; the row's columns are
        # one run after its left padding, so one stacked copy per K / V serves every layer
        a, b = int(cols[0]), int(cols[-1]) + 1  # never empty: a base leaves at least one token after it
        ks = [layer.keys[r, ..., a:b, :] for layer in cache.layers]
        vs = [layer.values[r, ..., a:b, :] for layer in cache.layers]
        if b - a == cols.numel() and len({k.shape for k in ks}) == 1 and len({v.shape for v in vs}) == 1:
            keys, values = list(torch.stack(ks).unbind(0)), list(torch.stack(vs).unbind(0))
        else:  # columns with a gap, or layers of different shapes: one copy per layer
            keys = [layer.keys[r][..., cols, :] for layer in cache.layers]
            values = [layer.values[r][..., cols, :] for layer in cache.layers]
        self.store.insert(ids, keys, values, base=base)
        return stored

    @staticmethod
    def trim(cache: Any, mask: torch.Tensor) -> torch.Tensor:
        """Drop leading columns that are padding in every remaining row."""
        live = mask.any(dim=0).nonzero(as_tuple=True)[0]
        first = int(live[0]) if live.numel() else 0
        if first == 0:
            return mask
        for layer in cache.layers:
            layer.drop_front(first)
        return mask[:, first:]
