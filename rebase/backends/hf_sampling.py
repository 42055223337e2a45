"""Batch-independent sampling for the transformers backend: Gumbel-max with counter-based noise.

Why: a sample must be the same whatever else shares its batch and in whatever order requests come.
A torch.Generator per row would need a Python loop in the hot path, and one shared generator makes
every row depend on its neighbours. Instead every random number is a pure function of
(request seed, sample index, decode step, vocabulary index): a splitmix64 hash evaluated in int64
torch ops for the whole (rows x vocab) block at once, turned into Gumbel noise. argmax(logits / T +
Gumbel) is an exact sample of softmax(logits / T); nucleus (top_p) filtering sets the logits outside
the nucleus to -inf first. Temperature 0 is plain argmax.

    tokens = sample_next(logits, temperature, top_p, seeds, sample_idx, step)
"""

from __future__ import annotations

import torch

DEFAULT_SEED = 0x5EED_0F_2EBA5E  # used when a request has no seed: still reproducible
_MASK64 = (1 << 64) - 1


def as_int64(x: int) -> int:
    """Any Python int (a negative or >= 2^63 seed, an unsigned constant) as the signed int64 with
    the same low 64 bits."""
    x &= _MASK64
    return x - (1 << 64) if x >= 1 << 63 else x


_GAMMA = as_int64(0x9E3779B97F4A7C15)
_M1 = as_int64(0xBF58476D1CE4E5B9)
_M2 = as_int64(0x94D049BB133111EB)


def _shr(x: torch.Tensor, k: int) -> torch.Tensor:
    """Logical right shift of int64 (torch's >> is arithmetic on negative values)."""
    return (x >> k) & ((1 << (64 - k)) - 1)


def splitmix64(x: torch.Tensor) -> torch.Tensor:
    """The splitmix64 finaliser on int64 tensors (multiplication wraps modulo 2^64)."""
    z = x + _GAMMA
    z = (z ^ _shr(z, 30)) * _M1
    z = (z ^ _shr(z, 27)) * _M2
    return z ^ _shr(z, 31)


def row_keys(seeds: torch.Tensor, sample_idx: torch.Tensor, step: int) -> torch.Tensor:
    """One 64-bit key per row from (seed, sample index, step); chained so no two inputs collide
    by simple arithmetic (seed + 1 with sample 0 differs from seed with sample 1)."""
    k = splitmix64(seeds)
    k = splitmix64(k ^ sample_idx)
    return splitmix64(k ^ step)


def uniform(keys: torch.Tensor, vocab: int) -> torch.Tensor:
    """(rows, vocab) float64 uniforms in (0, 1) from the row keys and the vocabulary index."""
    idx = torch.arange(1, vocab + 1, device=keys.device, dtype=torch.int64) * _GAMMA
    bits = splitmix64(keys[:, None] + idx[None, :])
    return (_shr(bits, 11).to(torch.float64) + 0.5) * (1.0 / (1 << 53))


def gumbel(keys: torch.Tensor, vocab: int) -> torch.Tensor:
    return -torch.log(-torch.log(uniform(keys, vocab)))


def top_p_filter(scaled: torch.Tensor, top_p: torch.Tensor) -> torch.Tensor:
    """Set logits outside each row's nucleus to -inf: keep the smallest set of most likely tokens
    whose probability reaches top_p (the most likely token always stays)."""
    if bool((top_p >= 1.0).all()):
        return scaled
    sorted_logits, order = torch.sort(scaled, dim=-1, descending=True, stable=True)
    probs = torch.softmax(sorted_logits, dim=-1)
    mass_before = torch.cumsum(probs, dim=-1) - probs
    drop_sorted = mass_before >= top_p[:, None]
    drop = torch.zeros_like(drop_sorted).scatter(-1, order, drop_sorted)
    return scaled.masked_fill(drop, float("-inf"))


def sample_next(
    logits: torch.Tensor,
    temperature: torch.Tensor,
    top_p: torch.Tensor,
    seeds: torch.Tensor,
    sample_idx: torch.Tensor,
    step: "int | torch.Tensor",
) -> torch.Tensor:
    """Next token per row. logits (rows, vocab); temperature, top_p float (rows,); seeds,
    sample_idx int64 (rows,); step = how many tokens each row has generated so far (an int, or an
    int64 (rows,) tensor when rows joined the batch at different times)."""
    logits = logits.float()
    greedy = temperature <= 0
    out = logits.argmax(dim=-1)
    if bool(greedy.all()):
        return out
    rows = (~greedy).nonzero(as_tuple=True)[0]
    scaled = logits[rows] / temperature[rows, None]
    scaled = top_p_filter(scaled, top_p[rows])
    keys = row_keys(seeds[rows], sample_idx[rows], step[rows] if isinstance(step, torch.Tensor) else step)
    noisy = scaled.double() + gumbel(keys, logits.shape[-1])
    out[rows] = noisy.argmax(dim=-1)
    return out
