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
for any request it can hold (best fit); a miss allocates `HEADROOM` times the request, since
slabs grow from round to round as the paths do, and drops one free buffer too small to serve it;
`reset` keeps only the buffers the call used, so the pool holds about one call's peak. GPUs have a
caching allocator of their own: the backend uses the pool on CPU devices only.

    pool = SlabPool()
    k = pool.take((rows, heads, cols, dim), like=keys)   # a view of a pooled buffer
    pool.release(old_k); ...; pool.reset()              # at the end of the generate call
"""

from __future__ import annotations

import math

import torch

HEADROOM = 1.5


class SlabPool:
    def __init__(self) -> None:
        self.free: list[torch.Tensor] = []  # flat buffers
        self.busy: dict[int, torch.Tensor] = {}  # storage pointer -> flat buffer
        self.used: dict[int, torch.Tensor] = {}  # every buffer taken since the last reset

    def take(self, shape: tuple[int, ...], like: torch.Tensor) -> torch.Tensor:
        """An uninitialised tensor of `shape` with `like`'s dtype and device, from a pooled buffer."""
        need = math.prod(shape)
        same = [i for i, b in enumerate(self.free) if b.dtype == like.dtype and b.device == like.device]
        fits = [i for i in same if self.free[i].numel() >= need]
        if fits:
            buf = self.free.pop(min(fits, key=lambda i: self.free[i].numel()))
        else:
            if same:  # the paths grew past it: let the largest go rather than keep every size
                gone = self.free.pop(max(same, key=lambda i: self.free[i].numel()))
                self.used.pop(gone.untyped_storage().data_ptr(), None)
            buf = like.new_empty(max(need, int(need * HEADROOM)))
        self.busy[buf.untyped_storage().data_ptr()] = buf
        self.used[buf.untyped_storage().data_ptr()] = buf
        return buf[:need].view(shape)

    def release(self, t: torch.Tensor) -> None:
        """Free the buffer `t` (a view of it) came from; a tensor not from the pool is ignored."""
        buf = self.busy.pop(t.untyped_storage().data_ptr(), None)
        if buf is not None:
            self.free.append(buf)

    def reset(self) -> None:
        """Free every buffer (the generate call that used them is over) and let go of those the
        call did not use: the pool holds about one call's peak, not every shape ever asked for."""
        self.free = list(self.used.values())
        self.busy, self.used = {}, {}

    def clear(self) -> None:
        self.free, self.busy, self.used = [], {}, {}

    def nbytes(self) -> int:
        return sum(b.numel() * b.element_size() for b in self.free + list(self.busy.values()))
