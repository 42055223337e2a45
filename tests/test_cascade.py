"""Cascade attention (rebase/backends/hf_cascade.py): a decode step that reads each shared block once
for all its rows gives the attention of the full context, and generation with it gives the same
tokens and stores the same KV as the expanded cache; a search round's rows share their problem's
prompt entry as one block.

    OMP_NUM_THREADS=1 .venv/bin/pytest -x -q tests/test_cascade.py
"""

from __future__ import annotations

import pytest
import torch

from rebase.backends import hf_cascade
from rebase.backends.hf_cascade import Blocks, Step
from rebase.backends.hf_decode import BatchDecoder
from rebase.backends.hf_kv import SlabLayer
from rebase.backends.hf_stream import LiveBatch
from rebase.types import GenerationRequest as Req
from test_backend_hf import PROMPTS, build_sampler_model, ids_of, make


@pytest.fixture(scope="module")
def models(tiny_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("cascade")
    return {a: build_sampler_model(root / a, tiny_dir / "tok", a, seed=3) for a in ("llama", "qwen2")}


@pytest.mark.parametrize("heads,kv_heads", [(4, 4), (4, 2)])
def test_step_equals_attention_over_block_and_own_columns(heads, kv_heads):
    torch.manual_seed(0)
    dim, lengths = 8, [7, 3, 11]  # three blocks of different lengths (right-aligned, padded)
    blocks = Blocks()
    srcs = [([torch.randn(kv_heads, n, dim)], [torch.randn(kv_heads, n, dim)]) for n in lengths]
    blocks._add([(("group", i), ks, vs, None) for i, (ks, vs) in enumerate(srcs)])
    blk = torch.tensor([2, 0, 2, 2, 1, 0])  # rows per block: 2, 1, 3
    own_len, width = [4, 1, 6, 2, 5, 3], 6
    own = SlabLayer.empty(len(blk), torch.zeros(kv_heads, 1, dim), torch.zeros(kv_heads, 1, dim), width)
    own.n = width
    own._k.normal_()
    own._v.normal_()
    mask = torch.zeros(len(blk), width, dtype=torch.long)
    for r, n in enumerate(own_len):
        mask[r, width - n :] = 1
    q = torch.randn(len(blk), heads, 1, dim)
    out = Step(blocks, blk, mask, torch.float32).attend(0, q, own.keys, own.values, None)
    rep = heads // kv_heads
    for r, n in enumerate(own_len):
        ks, vs = srcs[int(blk[r])]
        k = torch.cat([ks[0], own.keys[r, :, width - n :]], dim=-2).repeat_interleave(rep, 0)
        v = torch.cat([vs[0], own.values[r, :, width - n :]], dim=-2).repeat_interleave(rep, 0)
        ref = torch.nn.functional.scaled_dot_product_attention(q[r], k, v)  # (heads, 1, dim)
        assert torch.allclose(out[r, 0], ref[:, 0], atol=1e-5), r


def test_prune_drops_blocks_without_rows_and_renumbers():
    blocks = Blocks()
    srcs = [([torch.randn(1, n, 4)], [torch.randn(1, n, 4)]) for n in (5, 9, 2)]
    blocks._add([(("group", i), ks, vs, None) for i, (ks, vs) in enumerate(srcs)])
    blk = blocks.prune(torch.tensor([0, 2, 2]))  # block 1 (the longest) has no row left
    assert blocks.count == 2 and blocks.lengths == [5, 2] and blk.tolist() == [0, 1, 1]
    assert blocks.layers[0].n == 5  # the columns only block 1 needed are gone
    assert torch.equal(blocks.layers[0].keys[1, :, -2:], srcs[2][0][0])


def rounds(g):
    """A search-like pair of calls: first-level requests, then children of their completions."""
    first = [Req(prompt=PROMPTS[i % 3], n=1 + i % 4, temperature=1.0, max_tokens=5 + 3 * i, seed=i) for i in range(6)]
    a = g.generate(first)
    kids = [
        Req(
            prompt_token_ids=g.encode(first[i % 3].prompt) + a[i % 3][j].token_ids,
            n=2,
            temperature=1.0,
            max_tokens=9,
            seed=40 + i,
        )
        for i in range(6)
        for j in range(min(2, first[i % 3].n))
    ]
    return a, g.generate(kids), kids


@pytest.mark.parametrize("arch", ["llama", "qwen2"])
def test_generation_with_cascade_matches_the_expanded_cache(models, arch, monkeypatch):
    splits = []
    real_split = Blocks.split

    def split(self, groups, *a, **k):
        out = real_split(self, groups, *a, **k)
        splits.append((len(groups), self.count))
        return out

    real_of = Blocks.of_prefixes

    def of_prefixes(self, groups):
        out = real_of(self, groups)
        splits.append((len(groups), self.count))
        return out

    monkeypatch.setattr(Blocks, "split", split)
    monkeypatch.setattr(Blocks, "of_prefixes", of_prefixes)
    on, off = make(models[arch]), make(models[arch], cascade_attention=False)
    assert on.cascade and not off.cascade
    a_on, b_on, kids = rounds(on)
    assert splits, "the decode must run with cascade attention"
    groups, n_blocks = splits[-1]
    assert n_blocks < groups, "children of one prompt must share its prompt entry as one block"
    splits.clear()
    a_off, b_off, _ = rounds(off)
    assert not splits
    assert ids_of(a_on) == ids_of(a_off) and ids_of(b_on) == ids_of(b_off)
    assert [[c.cached_tokens for c in o] for o in b_on] == [[c.cached_tokens for c in o] for o in b_off]
    # the stored KV of a grandchild's prefix is the same whichever way it was decoded
    probe = list(kids[0].prompt_token_ids) + b_on[0][0].token_ids  # stored: all but the last id
    kv = []
    for g in (on, off):
        entry = g.prefix_cache.lookup(probe)
        assert entry is not None and entry.length == len(probe) - 1
        kv.append(torch.cat([k for _, k, _ in entry.segments(0)], dim=-2))
    assert torch.allclose(kv[0], kv[1], atol=1e-5)


@pytest.mark.parametrize("cascade", [True, False])
def test_children_join_as_pending_rows_with_the_tokens_and_kv_of_a_prefill(models, cascade, monkeypatch):
    """A child (prompt cached but its last token) joins the decode as one row per request that feeds
    that token in a decode step, then is copied to each sample: no prefill forward, and the same
    tokens, cache accounting and stored KV as prefilling it."""
    prefills = []
    real = BatchDecoder.prefill

    def prefill(self, groups, *a, **k):
        prefills.append(len(groups))
        return real(self, groups, *a, **k)

    monkeypatch.setattr(BatchDecoder, "prefill", prefill)
    out = {}
    for pending in (True, False):
        monkeypatch.setattr(LiveBatch, "PENDING", pending)
        g = make(models["llama"], cascade_attention=cascade)
        prefills.clear()
        a, b, kids = rounds(g)
        probe = list(kids[1].prompt_token_ids) + b[1][1].token_ids
        entry = g.prefix_cache.lookup(probe)
        assert entry is not None and entry.length == len(probe) - 1
        kv = torch.cat([k for _, k, _ in entry.segments(3 % len(entry.keys))], dim=-2)
        out[pending] = (ids_of(a), ids_of(b), [[c.cached_tokens for c in o] for o in b], kv, len(prefills))
    assert out[True][:3] == out[False][:3]
    assert torch.allclose(out[True][3], out[False][3], atol=1e-5)
    assert out[True][4] < out[False][4], "children must join without a prefill forward"


def test_supports_only_plain_attention_on_cpu(models):
    g = make(models["llama"])
    assert hf_cascade.supports(g.model)
    g.model.config.sliding_window = 16  # a windowed model reads a window, not the whole cache
    assert not hf_cascade.supports(g.model)
