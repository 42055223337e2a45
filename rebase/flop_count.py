"""Measured FLOPs: torch's FlopCounterMode plus the CPU attention kernel formula torch lacks.

Why: the `policy` FLOP view (rebase/flops.py) is checked against a measurement, and benchmarks
report measured cost beside the ledger's. torch 2.13 counts matmuls but has no formula for
`aten._scaled_dot_product_flash_attention_for_cpu`, the kernel SDPA uses on CPU, so attention would
count as zero. The formula here counts QK^T and the weighted sum over V, 2 x 2 x b x heads x d per
(query, key) pair that is actually attended: every pair without a mask, the lower triangle under
`is_causal` (top-left aligned, as torch defines it), and the allowed entries of an explicit mask.

    with flop_counter() as fc:
        model(input_ids)
    fc.get_total_flops()
"""

from __future__ import annotations

from typing import Any

import torch
from torch.utils.flop_counter import FlopCounterMode


def attended_pairs(sq: int, sk: int, is_causal: bool, attn_mask: Any, batch: int, heads: int) -> int:
    """Number of (batch, head, query, key) pairs that take part in attention."""
    if attn_mask is not None:
        allowed = attn_mask if attn_mask.dtype == torch.bool else attn_mask > float("-inf")
        return int(allowed.expand(batch, heads, sq, sk).sum())
    if is_causal:  # query i sees keys 0..i (top-left alignment), at most sk of them
        per_head = sum(min(i + 1, sk) for i in range(sq))
        return batch * heads * per_head
    return batch * heads * sq * sk


def sdpa_cpu_flop(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    dropout_p: float = 0.0,
    is_causal: bool = False,
    *args: Any,
    attn_mask: Any = None,
    out_val: Any = None,
    **kwargs: Any,
) -> int:
    """FLOPs of `_scaled_dot_product_flash_attention_for_cpu`: QK^T (2 d per pair) + AV (2 d_v per pair)."""
    b, h, sq, d = query.shape
    sk, dv = key.shape[-2], value.shape[-1]
    return attended_pairs(sq, sk, bool(is_causal), attn_mask, b, h) * 2 * (d + dv)


sdpa_cpu_flop._get_raw = True  # type: ignore[attr-defined]  # FlopCounterMode passes tensors, not shapes


def flop_counter(display: bool = False) -> FlopCounterMode:
    """A FlopCounterMode that also counts the CPU flash-attention kernel."""
    aten = torch.ops.aten
    return FlopCounterMode(
        display=display, custom_mapping={aten._scaled_dot_product_flash_attention_for_cpu: sdpa_cpu_flop}
    )
