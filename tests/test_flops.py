"""Tests of the FLOP ledger (rebase/flops.py) against real models and torch's FLOP counter.

- FlopSpec.from_hf_config's shape-derived parameter counts match instantiated Llama, Qwen2, Mistral
  and GPT-2 models (total and non-embedding) within 1%.
- The `paper` view reproduces the paper's 3.92e12 FLOPs per 290-token Llemma-7B solution.
- The `policy` view of real generate calls on the transformers backend agrees with
  torch.utils.flop_counter (plus rebase/flop_count.py's CPU attention formula) within 0.5%
  (agreement is ~0.1%; 2% would not see the attention term), for a plain
  call and for a tree-search child that reuses its parent's KV and shares one prefill among samples.

    OMP_NUM_THREADS=1 .venv/bin/pytest -q tests/test_flops.py
"""

from __future__ import annotations

import pytest
import torch

from rebase.model_config import TransformersModel
from rebase.flops import FlopSpec, Ledger
from rebase.types import GenerationRequest as Req


def tiny_config(arch: str, tied: bool):
    from transformers import GPT2Config, LlamaConfig, MistralConfig, Qwen2Config

    if arch == "gpt2":
        return GPT2Config(
            vocab_size=1000,
            bos_token_id=0,
            eos_token_id=0,
            n_embd=192,
            n_layer=3,
            n_head=3,
            n_positions=512,
            tie_word_embeddings=tied,
        )
    Cfg = {"llama": LlamaConfig, "qwen2": Qwen2Config, "mistral": MistralConfig}[arch]
    return Cfg(
        vocab_size=1000,
        hidden_size=192,
        intermediate_size=512,
        num_hidden_layers=3,
        num_attention_heads=3,
        num_key_value_heads=1,
        head_dim=64,
        tie_word_embeddings=tied,
    )


@pytest.mark.parametrize("tied", [True, False])
@pytest.mark.parametrize("arch", ["llama", "qwen2", "mistral", "gpt2"])
def test_param_counts_match_instantiated_models(arch, tied):
    from transformers import AutoModelForCausalLM

    from rebase.backends.loading import count_params

    cfg = tiny_config(arch, tied)
    with torch.device("meta"):  # shapes only: nothing is allocated
        model = AutoModelForCausalLM.from_config(cfg)
    total = count_params(model)
    embeddings = {id(m.weight): m.weight.numel() for m in model.modules() if isinstance(m, torch.nn.Embedding)}
    embeddings[id(model.get_output_embeddings().weight)] = model.get_output_embeddings().weight.numel()
    spec = FlopSpec.from_hf_config(cfg)
    assert spec.n_params == pytest.approx(total, rel=0.01)
    assert spec.n_nonembed == pytest.approx(total - sum(embeddings.values()), rel=0.01)
    assert (spec.n_layer, spec.d_attn, spec.d_model, spec.vocab) == (3, 192, 192, 1000)
    exact = FlopSpec.from_hf_config(cfg, n_params=total)
    assert exact.n_params == total and exact.n_nonembed == pytest.approx(spec.n_nonembed, rel=0.01)


def test_paper_view_reproduces_llemma_7b():
    spec = FlopSpec(n_params=int(6.74e9), n_nonembed=int(6.61e9), n_layer=32, d_attn=4096, d_model=4096, vocab=32000)
    ledger = Ledger()
    ledger.add("llemma-7b", spec, "policy", prompt_tokens=700, cached_tokens=0, generated_tokens=290)
    assert ledger.flops("paper") == pytest.approx(3.92e12, rel=0.005)
    assert ledger.flops("policy") > ledger.flops("paper") * 0.9  # prompt and attention cost more


def test_policy_view_hand_computed():
    spec = FlopSpec(n_params=142, n_nonembed=100, n_layer=2, d_attn=4, d_model=3, vocab=7)
    ledger = Ledger()
    ledger.add("m", spec, "policy", prompt_tokens=10, cached_tokens=4, generated_tokens=5)
    # processed positions 4..13 (the last generated token is never fed), attending 5..14 keys
    keys = sum(p + 1 for p in range(4, 14))
    assert ledger.tokens("policy", "processed_tokens") == 10
    assert ledger.flops("policy") == 2 * 100 * 10 + 4 * 2 * 4 * keys + 2 * 3 * 7 * 5
    ledger.add("prm", spec, "prm", prompt_tokens=6)
    assert ledger.flops("total") == ledger.flops("policy") + 2 * 100 * 6 + 4 * 2 * 4 * 21 + 2 * 3 * 7 * 6


@pytest.fixture(scope="module")
def policy(tiny_dir, tmp_path_factory):
    """A model big enough that the embedding is not most of it (hidden 256, 4 layers)."""
    from test_backend_hf import build_sampler_model

    from rebase.backends.hf import TransformersGenerator

    path = build_sampler_model(
        tmp_path_factory.mktemp("flops") / "m256", tiny_dir / "tok", "llama", seed=5, hidden=256, layers=4
    )
    return path, lambda **kw: TransformersGenerator(TransformersModel(name="m256", path=str(path), device="cpu", **kw))


def measure(gen, requests):
    from rebase.flop_count import flop_counter

    with flop_counter() as fc:
        out = gen.generate(requests)
    return out, fc.get_total_flops()


def ledger_of(gen, outs) -> Ledger:
    ledger = Ledger()
    for o in outs:
        for c in o:
            ledger.add(gen.name, gen.flop_spec, "policy", c.prompt_tokens, c.cached_tokens, c.generated_tokens)
    return ledger


def test_policy_view_matches_flop_counter(policy):
    _, make = policy
    gen = make(prefix_reuse=False)
    prompt = "Natalia sold clips to 48 of her friends in April, and then she sold half as many clips in May."
    out, measured = measure(gen, [Req(prompt=prompt, temperature=0, max_tokens=60)])
    c = out[0][0]
    assert 30 <= c.prompt_tokens <= 60 and c.generated_tokens >= 30 and c.cached_tokens == 0
    assert gen.flop_spec.n_nonembed > 3 * gen.flop_spec.d_model * gen.flop_spec.vocab
    assert ledger_of(gen, out).flops("policy") == pytest.approx(measured, rel=0.005)


def test_policy_view_matches_with_prefix_reuse_and_shared_prefill(policy):
    _, make = policy
    gen = make(prefix_reuse=True)
    parent = gen.generate([Req(prompt="Start with 17. Add 25. Multiply by 3.", temperature=0, max_tokens=20)])[0][0]
    child = gen.encode("Start with 17. Add 25. Multiply by 3.") + parent.token_ids
    out, measured = measure(gen, [Req(prompt_token_ids=child, n=3, temperature=1.0, max_tokens=25, seed=4)])
    assert [c.cached_tokens for c in out[0]] == [len(child) - 1, len(child), len(child)]
    assert ledger_of(gen, out).flops("policy") == pytest.approx(measured, rel=0.005)
    # and the ledger is not trivially close: pricing the prompt as uncached would be far off
    naive = Ledger()
    for c in out[0]:
        naive.add(gen.name, gen.flop_spec, "policy", c.prompt_tokens, 0, c.generated_tokens)
    assert naive.flops("policy") > 1.5 * measured
