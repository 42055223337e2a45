"""A bounded prefix KV cache for the transformers backend: tree-search children skip their prefill.

In tree search a child's prompt is its parent's prompt plus the parent's generated ids, so the
parent's keys and values already cover all of it but the last token. Every finished sequence's KV
(per layer: kv_heads x length x head_dim, for its token ids minus the last one, which was sampled
but never fed) is kept here, keyed by those token ids. A new prompt looks up its longest cached
prefix and prefills only the rest. The store is bounded by bytes and evicts the least recently used
entries first.

Lookup cost is O(prompt length) Python integer ops: a polynomial rolling hash of every prefix is
checked against the (length, hash) index and confirmed by comparing the ids exactly.

    cache = PrefixKVCache(capacity_bytes=2 << 30)
    cache.insert(ids, keys, values)            # keys/values: one tensor per layer, length len(ids)
    hit = cache.lookup(prompt_ids)             # longest cached prefix of length <= len(prompt) - 1
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Optional, Sequence

import torch

_MOD = (1 << 61) - 1  # a Mersenne prime keeps the rolling hash cheap and well spread
_BASE = 1_000_003


def prefix_hashes(ids: Sequence[int]) -> list[int]:
    """h[k] = hash of ids[:k] for k = 0..len(ids)."""
    h = [0]
    cur = 0
    for t in ids:
        cur = (cur * _BASE + t + 1) % _MOD
        h.append(cur)
    return h


@dataclass
class KVEntry:
    ids: tuple[int, ...]
    keys: list[torch.Tensor]  # per layer (kv_heads, len(ids), head_dim)
    values: list[torch.Tensor]
    nbytes: int

    @property
    def length(self) -> int:
        return len(self.ids)


class PrefixKVCache:
    """Least-recently-used store of KV states keyed by exact token-id sequences."""

    def __init__(self, capacity_bytes: int):
        self.capacity_bytes = int(capacity_bytes)
        self._entries: "OrderedDict[tuple[int, int], KVEntry]" = OrderedDict()  # (length, hash) -> entry
        self._length_counts: dict[int, int] = {}
        self.nbytes = 0
        self.hits = 0
        self.evictions = 0

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, ids: Sequence[int]) -> bool:
        key = (len(ids), prefix_hashes(ids)[-1])
        entry = self._entries.get(key)
        return entry is not None and entry.ids == tuple(ids)

    def lookup(self, prompt: Sequence[int]) -> Optional[KVEntry]:
        """The longest cached entry that is a prefix of `prompt` and leaves at least one prompt
        token to prefill (its logits give the first new token), or None."""
        if not self._entries or len(prompt) < 2:
            return None
        hashes = prefix_hashes(prompt)
        for length in range(len(prompt) - 1, 0, -1):
            if length not in self._length_counts:
                continue
            key = (length, hashes[length])
            entry = self._entries.get(key)
            if entry is not None and entry.ids == tuple(prompt[:length]):
                self._entries.move_to_end(key)
                self.hits += 1
                return entry
        return None

    def insert(self, ids: Sequence[int], keys: list[torch.Tensor], values: list[torch.Tensor]) -> bool:
        """Store KV for `ids` (each tensor's length axis is -2); False when it cannot fit at all."""
        ids = tuple(ids)
        if not ids:
            return False
        if any(k.shape[-2] != len(ids) for k in keys):
            raise ValueError(f"KV length {keys[0].shape[-2]} does not match {len(ids)} token ids")
        key = (len(ids), prefix_hashes(ids)[-1])
        old = self._entries.get(key)
        if old is not None and old.ids == ids:
            self._entries.move_to_end(key)
            return True
        if old is not None:  # a hash collision: the newer sequence replaces the older one
            self._entries.move_to_end(key, last=False)
            self._evict_oldest()
        nbytes = sum(t.numel() * t.element_size() for t in keys) + sum(t.numel() * t.element_size() for t in values)
        if nbytes > self.capacity_bytes:
            return False
        while self.nbytes + nbytes > self.capacity_bytes:
            self._evict_oldest()
        self._entries[key] = KVEntry(ids, keys, values, nbytes)
        self._length_counts[len(ids)] = self._length_counts.get(len(ids), 0) + 1
        self.nbytes += nbytes
        return True

    def _evict_oldest(self) -> None:
        (length, _), entry = self._entries.popitem(last=False)
        self.nbytes -= entry.nbytes
        self.evictions += 1
        left = self._length_counts[length] - 1
        if left:
            self._length_counts[length] = left
        else:
            del self._length_counts[length]

    def clear(self) -> None:
        self._entries.clear()
        self._length_counts.clear()
        self.nbytes = 0
