"""A pool of reusable KV slab buffers for the transformers backend on a CPU.

Why: every generate call used to allocate its slabs afresh (the prefill slab, then the slab its
rows are expanded into), and on Linux a buffer of more than a few MB is fresh mmap'd memory whose
pages fault in on first touch. Measured on the bench shape (88M policy, 128 rows, ~280 columns, 110
MB per layer and K or V): `index_select` into a fresh tensor took 60 ms, into an existing one 7 ms.
Tree search expands a slab every round (REBASE: six per search where sampling has one), so the
page faults, not the copies, were most of what REBASE paid over sampling per token (11.7 s of
`index_select` against 6.0 s in a profile of one bench round). The pool keeps the buffers of the
last generate call and hands them out again.

Ownership is explicit: `take` marks a buffer busy, `release` (a slab replaced by a copy) or `reset`
(the end of a generate call: nothing from it is read after) frees it. A free buffer is handed out
for any request it can hold (best fit); a miss allocates `HEADROOM` times the request, since slabs
grow from round to round as the paths do. Memory is bounded: the pool holds at most `LIMIT` times
the most buffer bytes its callers held at once in this call or the last CALLS ones, dropping the
smallest free buffers first. The bound counts whole buffers, not the parts handed out: counting
the parts let a call's buffers (each up to HEADROOM x its request) exceed the bound at every
reset, so the smallest were dropped and allocated afresh by the next call, over and over (a
REBASE search after a sampling run allocated more than it took). GPUs have a caching allocator
of their own: the backend uses the pool on CPU devices only.

    pool = SlabPool()
    k = pool.take((rows, heads, cols, dim), like=keys)   # a view of a pooled buffer
    pool.release(old_k); ...; pool.reset()              # at the end of the generate call
"""

from __future__ import annotations

import math

import torch

HEADROOM = 1.5
LIMIT = 2.0
CALLS = 8  # a tree search's rounds are one call each: its biggest round's buffers stay


def _key(t: torch.Tensor) -> int:
    return t.untyped_storage().data_ptr()


def _bytes(t: torch.Tensor) -> int:
    return t.numel() * t.element_size()


class SlabPool:
    def __init__(self) -> None:
        self.clear()

    def take(self, shape: tuple[int, ...], like: torch.Tensor) -> torch.Tensor:
        """An uninitialised tensor of `shape` with `like`'s dtype and device, from a pooled buffer."""
        need = math.prod(shape)
        fits = [
            i
            for i, b in enumerate(self.free)
            if b.dtype == like.dtype and b.device == like.device and b.numel() >= need
        ]
        if fits:
            buf = self.free.pop(min(fits, key=lambda i: self.free[i].numel()))
        else:
            buf = like.new_empty(max(need, int(need * HEADROOM)))
            self.missed_bytes += _bytes(buf)
        self.busy[_key(buf)] = buf
        self.held += _bytes(buf)
        self.taken_bytes += need * buf.element_size()
        self.peak = max(self.peak, self.held)
        if not fits:
            self._trim()
        return buf[:need].view(shape)

    def release(self, t: torch.Tensor) -> None:
        """Free the buffer `t` (a view of it) came from; a tensor not from the pool is ignored."""
        buf = self.busy.pop(_key(t), None)
        if buf is not None:
            self.free.append(buf)
            self.held -= _bytes(buf)

    def reset(self) -> None:
        """Free every buffer (the generate call that used them is over)."""
        self.free += list(self.busy.values())
        self.busy = {}
        self.recent = (self.recent + [self.peak])[-CALLS:]
        self.peak = self.held = 0
        self._trim()

    def _trim(self) -> None:
        """Drop the smallest free buffers while the pool holds more than LIMIT x the peak."""
        limit = LIMIT * max([self.peak] + self.recent)
        total = self.nbytes()
        self.free.sort(key=lambda b: b.numel())
        while self.free and total > limit:
            total -= _bytes(self.free.pop(0))

    def clear(self) -> None:
        self.free: list[torch.Tensor] = []  # flat buffers
        self.busy: dict[int, torch.Tensor] = {}  # storage pointer -> buffer
        self.held = self.peak = 0  # bytes of busy buffers now / at most in this call
        self.recent: list[int] = []  # the peaks of the last CALLS calls
        self.taken_bytes = self.missed_bytes = 0  # bytes handed out / of them, freshly allocated

    def nbytes(self) -> int:
        return sum(_bytes(b) for b in self.free) + sum(_bytes(b) for b in self.busy.values())
