"""The `total` FLOP view against torch's FlopCounterMode, for each PRM family on transformers.

A whole search (policy generation and PRM scoring) runs under the counter (rebase/flop_count.py);
the ledger's `total` must agree within 0.5%. This is tight enough to see the PRM's output head: the
ledger charges head rows only where scores are read (a step tag, a judge prompt's last token), each
as wide as the head (the vocabulary, or 2 for token_classify); charging the head at every PRM token,
as a flat `2 x d_model x vocab` per token would, is far outside it (checked below).
The PRM runs with batch_tokens=1 (each path alone): padding inside a batch is computed but, by
design, not charged (rebase/flops.py), so it would blur the comparison.

    OMP_NUM_THREADS=1 .venv/bin/pytest -q tests/test_flops_prm.py
"""

from __future__ import annotations

import dataclasses

import pytest

from rebase.config import PromptConfig, SamplingConfig
from rebase.flops import Ledger
from rebase.types import Problem
from test_prm import FAMILIES, make

QUESTIONS = [
    "Start with 17. Add 25. Multiply by 3. What is the result?",
    "Natalia sold clips to 48 of her friends in April, and then half as many in May. How many in all?",
]


@pytest.fixture(scope="module")
def generator(tiny_dir, tmp_path_factory):
    from test_backend_hf import build_sampler_model

    from rebase.backends.hf import TransformersGenerator
    from rebase.model_config import TransformersModel

    path = build_sampler_model(
        tmp_path_factory.mktemp("flops_prm") / "m256", tiny_dir / "tok", "llama", seed=5, hidden=256, layers=4
    )
    return TransformersGenerator(TransformersModel(name="m256", path=str(path), device="cpu", prefix_reuse=False))


def search_measured(strategy: str, generator, prm, budget: int):
    from rebase.tasks.prompts import PromptFormat
    from rebase.flop_count import flop_counter
    from rebase.registry import STRATEGIES
    from strategies.base import SearchContext

    ctx = SearchContext(
        generator=generator,
        prm=prm,
        prompts=PromptFormat.from_config("gsm8k", PromptConfig()),
        sampling=SamplingConfig(temperature=1.0, max_tokens=48, max_step_tokens=12, max_depth=4),
        seed=3,
        dataset="gsm8k",
    )
    problems = [Problem(id=f"p{i}", question=q, gold="1", dataset="gsm8k") for i, q in enumerate(QUESTIONS[:1])]
    with flop_counter() as fc:
        results = STRATEGIES.get(strategy)().search(problems, budget, ctx)
    ledger = Ledger()
    for r in results:
        ledger.extend(r.ledger)
    return ledger, fc.get_total_flops()


@pytest.mark.parametrize("family", list(FAMILIES))
def test_total_view_matches_flop_counter(tiny_dir, generator, family):
    prm = make(tiny_dir, family, batch_tokens=1)
    ledger, measured = search_measured("weighted_majority", generator, prm, budget=3)
    prm_entries = [e for e in ledger.entries if e.role != "policy"]
    assert prm_entries and sum(e.prompt_tokens for e in prm_entries) > 20  # the PRM really read something
    prm_share = 1 - ledger.flops("policy") / ledger.flops("total")
    assert prm_share > 0.01, prm_share  # the PRM is a visible part of the total
    assert ledger.flops("total") == pytest.approx(measured, rel=0.005)
    print(f"{family}: ledger total / measured = {ledger.flops('total') / measured:.5f}, PRM share {prm_share:.3f}")
    # a vocabulary-wide head at every PRM token (the flat pricing) is far outside the tolerance
    flat = Ledger(
        {k: dataclasses.replace(v, head=None) for k, v in ledger.specs.items()},
        [dataclasses.replace(e, logit_rows=None) for e in ledger.entries],
    )
    assert flat.flops("total") > measured * 1.01


def test_total_view_matches_flop_counter_in_tree_search(tiny_dir, generator):
    """REBASE scores each child's path, which extends its parent's: the same agreement."""
    prm = make(tiny_dir, "step_tag", batch_tokens=1)
    ledger, measured = search_measured("rebase", generator, prm, budget=3)
    prm_entries = [e for e in ledger.entries if e.role == "prm"]
    assert len(prm_entries) >= 3
    # with kv_reuse (the default) a child's path is read on its parent's cached KV: the cached
    # tokens and the head rows of stored scores are free, in the ledger as in the measurement
    assert sum(e.cached_tokens for e in prm_entries) > 0
    print(f"rebase/step_tag: ledger total / measured = {ledger.flops('total') / measured:.5f}")
    assert ledger.flops("total") == pytest.approx(measured, rel=0.005)


def test_token_classify_head_is_two_rows_wide(tiny_dir):
    prm = make(tiny_dir, "token_classify")
    assert prm.flop_spec.head == 2 and prm.flop_spec.head_width == 2
    causal = make(tiny_dir, "step_tag")
    assert causal.flop_spec.head is None and causal.flop_spec.head_width == causal.flop_spec.vocab
