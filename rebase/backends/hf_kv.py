"""Decode-time KV storage for the transformers backend: preallocated slabs with in-place appends.

Why: transformers' DynamicLayer appends a token with torch.cat, which copies the whole cache of
the batch at every step, and dropping finished rows (batch_select_indices) copies it again. In
tree search some row finishes at almost every step (a step ends at "\\n" after ~20 tokens, so a
batch of 128 rows loses several per step), so these copies, not the matmuls, dominated a CPU
profile (torch.cat + batch_select_indices ~ 1/3 of decode time at 8 problems x 16 samples).

A `SlabLayer` keeps one layer's keys and values in a (rows, heads, capacity, head_dim) buffer sized
for the whole decode (prompt + max new tokens); a step writes its one new column in place and
attention reads a view of the first `n` columns of the first `rows` rows. Finished rows are
removed by `move_rows`: the live rows at the end of the batch move into the holes, so only those
rows are copied, not the batch. The decoder reorders its own per-row state the same way
(`compaction_order`); results do not depend on row order (sampling noise is keyed by request
seed, sample index and step, rebase/backends/hf_sampling.py).

    cache.layers[i] = SlabLayer(layer.keys, layer.values, index, extra=max_new_tokens)
    order, holes, movers = compaction_order(n_rows, dead)
    for layer in cache.layers: layer.move_rows(holes, movers, len(order))
"""

from __future__ import annotations

from typing import Any, Optional

import torch
from transformers.cache_utils import DynamicLayer

from rebase.backends.hf_pool import SlabPool


class SlabLayer(DynamicLayer):
    """A DynamicLayer whose storage is a preallocated buffer; `keys` / `values` are views of it."""

    def __init__(
        self,
        keys: Optional[torch.Tensor],
        values: Optional[torch.Tensor],
        index: Optional[torch.Tensor] = None,
        extra: int = 0,
        pool: Optional[SlabPool] = None,
    ):
        super().__init__()
        self.extra = extra
        self.pool = pool  # buffers come from (and go back to) it when set (hf_pool.py)
        self._k = self._v = None
        self.rows = self.n = 0
        if keys is None:  # allocated by the first update (a prefill with no cached prefix)
            return
        if index is not None:
            keys, values = keys.index_select(0, index), values.index_select(0, index)
        b, h, n, d = keys.shape
        self._k = self._alloc((b, h, n + extra, d), keys)
        self._v = self._alloc((b, h, n + extra, values.shape[-1]), values)
        self._k[:, :, :n] = keys
        self._v[:, :, :n] = values
        self.rows, self.n = b, n
        self.dtype, self.device = keys.dtype, keys.device
        self.is_initialized = True

    @classmethod
    def empty(
        cls,
        rows: int,
        like_k: torch.Tensor,
        like_v: torch.Tensor,
        capacity: int,
        pool: Optional[SlabPool] = None,
        spare_rows: int = 0,
    ) -> "SlabLayer":
        """A slab of `rows` rows and `capacity` columns, heads and head_dim from (heads, len, dim)
        tensors `like_k` / `like_v`; nothing written yet (n = 0). `spare_rows` more rows are
        allocated for rows added later (`copy_rows`)."""
        self = cls(None, None, pool=pool)
        self._k = self._alloc((rows + spare_rows, like_k.shape[0], capacity, like_k.shape[-1]), like_k)
        self._v = self._alloc((rows + spare_rows, like_v.shape[0], capacity, like_v.shape[-1]), like_v)
        self.rows = rows
        self.dtype, self.device = like_k.dtype, like_k.device
        self.is_initialized = True
        return self

    def _alloc(self, shape: tuple[int, ...], like: torch.Tensor) -> torch.Tensor:
        return self.pool.take(shape, like) if self.pool is not None else like.new_empty(shape)

    def _replace(self, k: Optional[torch.Tensor], v: Optional[torch.Tensor]) -> None:
        """Adopt new buffers; the old ones go back to the pool (nothing reads them after)."""
        if self.pool is not None and self._k is not None:
            self.pool.release(self._k)
            self.pool.release(self._v)
        self._k, self._v = k, v  # type: ignore[assignment]

    def fill_prefix(self, row: int, keys: Optional[torch.Tensor], values: Optional[torch.Tensor], width: int) -> None:
        """Right-align a (heads, c, dim) cached prefix in columns [width - c, width) of `row`, and
        zero the padding before it (masked, but never left as uninitialised memory: 0 x NaN)."""
        c = 0 if keys is None else keys.shape[-2]
        self._k[row, :, : width - c] = 0
        self._v[row, :, : width - c] = 0
        if c:
            self._k[row, :, width - c : width] = keys
            self._v[row, :, width - c : width] = values

    def place_rows(self, rows: torch.Tensor, keys: torch.Tensor, values: torch.Tensor, width: int) -> None:
        """Write (len(rows), heads, w, dim) KV right-aligned into columns [width - w, width) of
        `rows` (merging prefill parts into one slab; the caller zeroes the padding first). A
        (heads, w, dim) KV is broadcast to every row of `rows`."""
        w = keys.shape[-2]
        self._k[rows, :, width - w : width] = keys
        self._v[rows, :, width - w : width] = values

    def zero_columns(self, width: int) -> None:
        self._k[: self.rows, :, :width] = 0
        self._v[: self.rows, :, :width] = 0

    def free(self) -> None:
        """Give the buffers back to the pool (the slab is not used again)."""
        self._replace(None, None)

    def fill_segments(self, row: int, segments: list[tuple[int, torch.Tensor, torch.Tensor]], width: int) -> None:
        """`fill_prefix` for a prefix stored in pieces (hf_cache.KVEntry.segments): piece (start, k, v)
        goes to columns [width - c + start, ...), where c is the whole prefix's length."""
        if len(segments) == 1:
            self.fill_prefix(row, segments[0][1], segments[0][2], width)
            return
        c = segments[-1][0] + segments[-1][1].shape[-2]
        self._k[row, :, : width - c] = 0
        self._v[row, :, : width - c] = 0
        for start, k, v in segments:
            at = width - c + start
            self._k[row, :, at : at + k.shape[-2]] = k
            self._v[row, :, at : at + v.shape[-2]] = v

    # the mixin and DynamicLayer read and assign `keys` / `values`; assignment adopts the tensor
    @property
    def keys(self) -> Any:
        return None if self._k is None else self._k[: self.rows, :, : self.n]

    @keys.setter
    def keys(self, value: Any) -> None:
        self._k = value
        if value is not None:
            self.rows, self.n = value.shape[0], value.shape[-2]

    @property
    def values(self) -> Any:
        return None if self._v is None else self._v[: self.rows, :, : self.n]

    @values.setter
    def values(self, value: Any) -> None:
        self._v = value

    def _grow(self, need: int) -> None:
        """Rarely used: a caller fed more tokens than the slab was sized for."""
        cap = max(need, 2 * self._k.shape[-2])
        grown = []
        for old in (self._k, self._v):
            new = self._alloc(old.shape[:2] + (cap, old.shape[-1]), old)
            new[:, :, : self.n] = old[:, :, : self.n]
            grown.append(new)
        self._replace(*grown)  # the old buffers go back to the pool

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args: Any, **kwargs: Any):
        m = key_states.shape[-2]
        if self._k is None:
            b, h, _, d = key_states.shape
            self._k = self._alloc((b, h, m + self.extra, d), key_states)
            self._v = self._alloc((b, value_states.shape[1], m + self.extra, value_states.shape[-1]), value_states)
            self.rows, self.n = b, 0
            self.dtype, self.device = key_states.dtype, key_states.device
            self.is_initialized = True
        if self.n + m > self._k.shape[-2]:
            self._grow(self.n + m)
        self._k[: self.rows, :, self.n : self.n + m] = key_states
        self._v[: self.rows, :, self.n : self.n + m] = value_states
        self.n += m
        return self.keys, self.values

    def get_seq_length(self) -> int:
        return self.n

    def batch_select_indices(self, indices: torch.Tensor) -> None:
        k, v = self._k[: self.rows], self._v[: self.rows]
        new_k = self._alloc((len(indices),) + k.shape[1:], k)
        new_v = self._alloc((len(indices),) + v.shape[1:], v)
        torch.index_select(k, 0, indices, out=new_k)
        torch.index_select(v, 0, indices, out=new_v)
        self._replace(new_k, new_v)
        self.rows = len(indices)

    def drop_front(self, cols: int) -> None:
        """Forget the first `cols` columns (padding in every row) without copying."""
        self._k = self._k[:, :, cols:]
        self._v = self._v[:, :, cols:]
        self.n -= cols

    def move_rows(self, holes: torch.Tensor, movers: torch.Tensor, rows: int) -> None:
        """Copy rows `movers` into rows `holes`, then keep the first `rows` rows."""
        if len(holes):
            self._k.index_copy_(0, holes, self._k.index_select(0, movers))
            self._v.index_copy_(0, holes, self._v.index_select(0, movers))
        self.rows = rows

    def admit(self, keys: torch.Tensor, values: torch.Tensor, extra: int, spare_rows: int = 0) -> int:
        """Append the rows of (q, heads, w, dim) `keys` / `values` (prefilled KV, right-aligned: its
        last column is the row's newest token) to this running slab, aligned so that their last column is
        the slab's last written column (the next decode step writes every row's new token at the same
        column). If w exceeds the slab's width the old rows are shifted right (one copy of the slab).
        Row and column room grow geometrically; `extra` columns are kept free after the end, and
        room for `spare_rows` more rows (`copy_rows`).
        Returns how many columns were added in front (the caller pads its mask by as many)."""
        q, w = keys.shape[0], keys.shape[-2]
        shift = max(0, w - self.n)
        n = self.n + shift
        rows = self.rows + q
        cap_rows, cap_cols = self._k.shape[0], self._k.shape[-2]
        need_cols = n + extra
        need_rows = rows + spare_rows
        if shift or need_rows > cap_rows or need_cols > cap_cols:
            new_rows = need_rows if need_rows <= cap_rows else max(need_rows, 2 * cap_rows)
            new_cols = max(need_cols, cap_cols + shift)
            grown = []
            for old in (self._k, self._v):
                new = self._alloc((new_rows, old.shape[1], new_cols, old.shape[-1]), old).zero_()
                new[: self.rows, :, shift : shift + self.n] = old[: self.rows, :, : self.n]
                grown.append(new)
            self._replace(*grown)
        for name, src in (("_k", keys), ("_v", values)):
            buf = getattr(self, name)
            buf[self.rows : rows, :, : n - w] = 0  # masked padding, never uninitialised memory
            buf[self.rows : rows, :, n - w : n] = src
        self.rows, self.n = rows, n
        return shift

    def copy_rows(self, src: torch.Tensor) -> None:
        """Append copies of rows `src` (all written columns) after the last row: a pending
        group's row becomes one row per sample (hf_stream.LiveBatch.expand)."""
        rows = self.rows + len(src)
        if rows > self._k.shape[0]:
            grown = []
            for old in (self._k, self._v):
                new = self._alloc((max(rows, 2 * old.shape[0]),) + old.shape[1:], old)
                new[: self.rows, :, : self.n] = old[: self.rows, :, : self.n]
                grown.append(new)
            self._replace(*grown)
        for buf in (self._k, self._v):
            buf[self.rows : rows, :, : self.n] = buf[src, :, : self.n]
        self.rows = rows


def compaction_order(n_rows: int, dead: set[int]) -> tuple[list[int], list[int], list[int]]:
    """New row order after removing `dead` rows: live rows below the new size stay where they are,
    each hole is filled by a live row from the end. Returns (order, holes, movers)."""
    live = n_rows - len(dead)
    holes = [i for i in range(live) if i in dead]
    movers = [i for i in range(live, n_rows) if i not in dead]
    order = list(range(live))
    for h, m in zip(holes, movers):
        order[h] = m
    return order, holes, movers
