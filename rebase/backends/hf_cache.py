"""A bounded prefix KV cache for the transformers backend: tree-search children skip their prefill.

In tree search a child's prompt is its parent's prompt plus the parent's generated ids, so the
parent's keys and values already cover all of it but the last token. Every finished sequence's KV
(per layer: kv_heads x length x head_dim, for its token ids minus the last one, which was sampled
but never fed) is kept here, keyed by those token ids. A new prompt looks up its longest cached
prefix and prefills only the rest. The store is bounded by bytes and evicts the least recently used
entries first.

Lookup cost is O(prompt length) Python integer ops: a polynomial rolling hash of every prefix is
checked against the (length, hash) index and confirmed by comparing the ids exactly.

An entry may hold only its own tokens' KV on top of a `base` entry (a tree-search child stores the
~20 tokens of its step, not again the whole path its parent's entry already holds): storing a child
then copies its new tokens only. A lookup refreshes the whole chain, and evicting an entry evicts
the entries built on it, so the byte count stays exact.

The PRM side (reward_models/kv_reuse.py) uses the same store with two additions: an entry may
carry a `payload` (the scores already read at some of its positions), and `longest_shared` finds
the longest prefix a prompt shares with ANY entry, not only an entry that is a whole prefix of it
(a judge prompt for step k shares "Problem ... Step 1 ... Step k-2" with the prompt for step k-1,
then differs). For that every entry is also indexed at each multiple of BLOCK tokens, as vLLM's
prefix cache hashes blocks; the match is then extended token by token.

    cache = PrefixKVCache(capacity_bytes=2 << 30)
    cache.insert(ids, keys, values)            # keys/values: one tensor per layer, length len(ids)
    hit = cache.lookup(prompt_ids)             # longest cached prefix of length <= len(prompt) - 1
    entry, n = cache.longest_shared(ids)       # entry.ids[:n] == ids[:n], n as large as stored
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Optional, Sequence

import torch

_MOD = (1 << 61) - 1  # a Mersenne prime keeps the rolling hash cheap and well spread
_BASE = 1_000_003
BLOCK = 16  # `longest_shared` index granularity (tokens)


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
    keys: list[torch.Tensor]  # per layer (kv_heads, len(ids) - start, head_dim): this entry's own tokens
    values: list[torch.Tensor]
    nbytes: int  # of its own tensors only
    payload: Any = None  # what the owner read off this KV (a PRM: {position: score})
    base: Optional["KVEntry"] = None  # the entry holding the KV of ids[:start], if any
    key: tuple[int, int] = (0, 0)

    @property
    def length(self) -> int:
        return len(self.ids)

    @property
    def start(self) -> int:
        """Where this entry's own tensors begin: 0, or its base's length."""
        return self.base.length if self.base is not None else 0

    def chain(self) -> list["KVEntry"]:
        """The entries whose own tensors together cover ids, oldest first."""
        out, e = [], self
        while e is not None:
            out.append(e)
            e = e.base
        return out[::-1]

    def segments(self, layer: int) -> list[tuple[int, torch.Tensor, torch.Tensor]]:
        """(first position, keys, values) of each piece of `layer`'s KV for ids, in order."""
        return [(e.start, e.keys[layer], e.values[layer]) for e in self.chain()]


class PrefixKVCache:
    """Least-recently-used store of KV states keyed by exact token-id sequences."""

    def __init__(self, capacity_bytes: int):
        self.capacity_bytes = int(capacity_bytes)
        self._entries: "OrderedDict[tuple[int, int], KVEntry]" = OrderedDict()  # (length, hash) -> entry
        self._length_counts: dict[int, int] = {}
        self._blocks: dict[tuple[int, int], dict[tuple[int, int], None]] = {}  # block prefix -> entry keys
        self._children: dict[tuple[int, int], dict[tuple[int, int], None]] = {}  # entry -> entries built on it
        self.nbytes = 0
        self.hits = 0
        self.evictions = 0

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, ids: Sequence[int]) -> bool:
        return self.get(ids) is not None

    def get(self, ids: Sequence[int]) -> Optional[KVEntry]:
        """The entry stored for exactly `ids`, or None."""
        entry = self._entries.get((len(ids), prefix_hashes(ids)[-1]))
        return entry if entry is not None and entry.ids == tuple(ids) else None

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
                self._touch(entry)
                self.hits += 1
                return entry
        return None

    def holds(self, entry: KVEntry) -> bool:
        """True while `entry` itself (not an evicted or replaced one) is stored."""
        return self._entries.get(entry.key) is entry

    def _touch(self, entry: KVEntry) -> None:
        for e in entry.chain():  # a base is used whenever an entry built on it is
            if self.holds(e):
                self._entries.move_to_end(e.key)

    def longest_shared(self, prompt: Sequence[int]) -> tuple[Optional[KVEntry], int]:
        """(entry, n): the entry sharing the longest prefix with `prompt` (n tokens, possibly all
        of the prompt), or (None, 0). Candidates: whole entries that are a prefix of the prompt,
        and entries agreeing with it on a block-aligned prefix, extended token by token."""
        if not self._entries or not prompt:
            return None, 0
        hashes = prefix_hashes(prompt)
        prompt_t = tuple(prompt)
        best: Optional[KVEntry] = None
        best_n = 0
        for length in sorted(self._length_counts, reverse=True):
            if length > len(prompt_t):
                continue
            key = (length, hashes[length])
            entry = self._entries.get(key)
            if entry is not None and entry.ids == prompt_t[:length]:
                best, best_n = entry, length
                break
        for length in range(len(prompt_t) // BLOCK * BLOCK, best_n, -BLOCK):
            owners = self._blocks.get((length, hashes[length]))
            if not owners:
                continue
            for key in owners:
                entry = self._entries[key]
                if entry.ids[:length] != prompt_t[:length]:
                    continue
                n, end = length, min(len(entry.ids), len(prompt_t))
                while n < end and entry.ids[n] == prompt_t[n]:
                    n += 1
                if n > best_n:
                    best, best_n = entry, n
            break
        if best is not None:
            self._touch(best)
            self.hits += 1
        return best, best_n

    def insert(
        self,
        ids: Sequence[int],
        keys: list[torch.Tensor],
        values: list[torch.Tensor],
        payload: Any = None,
        base: Optional[KVEntry] = None,
    ) -> bool:
        """Store KV for `ids` (each tensor's length axis is -2); False when it cannot fit at all.
        With `base` (a stored entry whose ids begin `ids`), the tensors cover ids[base.length:] only.
        Re-inserting stored ids refreshes the entry and replaces its payload."""
        ids = tuple(ids)
        if not ids:
            return False
        if base is not None and (not self.holds(base) or ids[: base.length] != base.ids or base.length >= len(ids)):
            raise ValueError("KV base: not a stored entry that is a proper prefix of these ids")
        start = base.length if base is not None else 0
        if any(k.shape[-2] != len(ids) - start for k in keys):
            raise ValueError(f"KV length {keys[0].shape[-2]} does not match {len(ids) - start} token ids")
        hashes = prefix_hashes(ids)  # the key below, and the block index at the end
        key = (len(ids), hashes[-1])
        old = self._entries.get(key)
        if old is not None and old.ids == ids:
            self._entries.move_to_end(key)
            if payload is not None:
                old.payload = payload
            return True
        if old is not None:  # a hash collision: the newer sequence replaces the older one
            self._entries.move_to_end(key, last=False)
            self._evict_oldest()
        nbytes = sum(t.numel() * t.element_size() for t in keys) + sum(t.numel() * t.element_size() for t in values)
        if nbytes > self.capacity_bytes:
            return False
        while self.nbytes + nbytes > self.capacity_bytes:
            self._evict_oldest()
        if base is not None and not self.holds(base):  # making room evicted the base: keep no orphan
            return False
        self._entries[key] = KVEntry(ids, keys, values, nbytes, payload, base, key)
        if base is not None:
            self._children.setdefault(base.key, {})[key] = None
            self._touch(base)
        self._length_counts[len(ids)] = self._length_counts.get(len(ids), 0) + 1
        for length in range(BLOCK, len(ids) + 1, BLOCK):
            self._blocks.setdefault((length, hashes[length]), {})[key] = None
        self.nbytes += nbytes
        return True

    def _evict_oldest(self) -> None:
        key = next(iter(self._entries))
        self._evict(key)

    def _evict(self, key: tuple[int, int]) -> None:
        """Remove one entry and every entry built on it."""
        for child in list(self._children.pop(key, {})):
            if child in self._entries:
                self._evict(child)
        entry = self._entries.pop(key)
        if entry.base is not None and entry.base.key in self._children:
            self._children[entry.base.key].pop(key, None)
        length = key[0]
        self.nbytes -= entry.nbytes
        hashes = prefix_hashes(entry.ids)
        for n in range(BLOCK, len(entry.ids) + 1, BLOCK):
            owners = self._blocks.get((n, hashes[n]))
            if owners is not None:
                owners.pop(key, None)
                if not owners:
                    del self._blocks[(n, hashes[n])]
        self.evictions += 1
        left = self._length_counts[length] - 1
        if left:
            self._length_counts[length] = left
        else:
            del self._length_counts[length]

    def clear(self) -> None:
        self._entries.clear()
        self._length_counts.clear()
        self._blocks.clear()
        self._children.clear()
        self.nbytes = 0
