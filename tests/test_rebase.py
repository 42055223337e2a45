"""Tests of REBASE (strategies/rebase.py): the allocation rule with exact values, both rounding
modes, the B_i bookkeeping (exactly N candidates with sequential_ceil, over random trees and
rewards), batching (one generate and one score call per round, whatever the batch size), exact
ledgers and PRM failures."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

import strategies.tree as tree_mod
from fakes import DELIM_ID, FakeGenerator, FakePRM, fake_extract_answer, make_ctx, problems
from rebase.errors import PRMError
from rebase.registry import STRATEGIES
from rebase.types import Completion
from strategies.aggregators import aggregate
from strategies.rebase import Rebase, allocate
from strategies.tree import terminal


@pytest.fixture(autouse=True)
def _answers(monkeypatch):
    monkeypatch.setattr(tree_mod, "extract_answer", fake_extract_answer)


REWARDS = [0.9, 0.8, 0.5, 0.2]


def test_worked_example_sequential_ceil():
    assert allocate(16, REWARDS, 0.2) == [10, 5, 1, 0]
    assert allocate(16, REWARDS, 0.1) == [12, 4, 0, 0]
    # input order is kept: the allocation follows each node, not the sorted order
    assert allocate(16, REWARDS[::-1], 0.2) == [0, 1, 5, 10]


def test_round_mode_may_miss_the_budget():
    assert allocate(16, REWARDS, 0.1, "round") == [12, 4, 0, 0]
    assert allocate(16, REWARDS, 0.2, "round") == [9, 5, 1, 0]  # 15: one short of B
    assert allocate(3, [0.5, 0.5], 1.0, "round") == [2, 2]  # 4: one over (halves round up)
    # every share rounds to 0: the top node still gets one child so the search cannot stall
    assert allocate(1, [0.2, 0.5, 0.4], 0.1, "round") == [0, 1, 0]


def test_allocation_edge_cases():
    assert allocate(0, REWARDS, 0.1) == [0, 0, 0, 0]
    assert allocate(5, [], 0.1) == []
    assert allocate(5, [0.3, 0.3, 0.3], 0.1) == [2, 2, 1]  # ties: earlier node first
    assert allocate(2, [1e6, -1e6], 1e-3) == [2, 0]  # no overflow in the softmax
    with pytest.raises(ValueError, match="temperature"):
        allocate(4, REWARDS, 0.0)
    with pytest.raises(ValueError, match="rounding"):
        allocate(4, REWARDS, 0.1, "floor")


@settings(max_examples=60, derandomize=True, deadline=None)
@given(
    budget=st.integers(1, 40),
    rewards=st.lists(st.floats(0, 1), min_size=1, max_size=12),
    t_b=st.sampled_from([0.01, 0.1, 0.2, 1.0, 10.0]),
)
def test_sequential_ceil_spends_exactly_the_budget(budget, rewards, t_b):
    alloc = allocate(budget, rewards, t_b)
    assert sum(alloc) == budget and min(alloc) >= 0
    # a higher reward never gets fewer children
    pairs = sorted(zip(rewards, alloc), key=lambda p: -p[0])
    assert all(a >= b for (ra, a), (rb, b) in zip(pairs, pairs[1:]) if ra > rb)


def test_params_and_registry():
    assert STRATEGIES.get("rebase") is Rebase
    assert Rebase.needs_prm and Rebase.default_aggregator == "weighted_majority"
    assert Rebase().params.balance_temperature == 0.1
    with pytest.raises(ValidationError):
        Rebase(balance_temperature=0)
    with pytest.raises(ValidationError):
        Rebase(beam=3)


def _worked_tree_generator():
    """Depth 1: steps "a".."d" (scored 0.9, 0.8, 0.5, 0.2); every later step gives the answer."""

    def script(req, i, rng):
        deeper = req.prompt_token_ids[-1] == DELIM_ID
        text = f"The answer is {i}." if deeper else "abcd"[i % 4]
        return Completion(
            text=text,
            token_ids=[100 + i, DELIM_ID],
            finish_reason="stop",
            prompt_tokens=len(req.prompt_token_ids),
            cached_tokens=0,
            generated_tokens=2,
        )

    return FakeGenerator(script=script), FakePRM(fixed=dict(zip("abcd", REWARDS)))


@pytest.mark.parametrize("rounding,alloc,n_cands", [("sequential_ceil", [3, 1, 0, 0], 4), ("round", [2, 1, 0, 0], 3)])
def test_search_saves_allocations_and_rounding_outcome(rounding, alloc, n_cands):
    gen, prm = _worked_tree_generator()
    ctx = make_ctx(gen, prm)
    (res,) = Rebase(balance_temperature=0.2, rounding=rounding).search(problems(1), 4, ctx)
    depth1 = [n for n in res.nodes if n.depth == 1]
    assert [n.text for n in depth1] == list("abcd") and [n.allocation for n in depth1] == alloc
    assert res.nodes[0].allocation == 4
    # round mode: 3 children for B=4; all finish, the frontier empties and the search stops one short
    assert len(res.candidates) == n_cands and res.info["rounds"] == 2
    assert res.info["budget_left"] == 4 - n_cands
    assert gen.calls == prm.calls == 2
    assert aggregate("weighted_majority", res.candidates) is not None


def _check_tree(res, budget, ctx, rounding):
    s = ctx.sampling
    nodes = res.nodes
    kids = {}
    for n in nodes[1:]:
        kids.setdefault(n.parent, []).append(n)
        assert n.depth <= s.max_depth and n.path_tokens <= s.max_tokens
        assert n.path_tokens == nodes[n.parent].path_tokens + len(n.token_ids)
        assert len(n.step_scores) == n.depth
    assert len(kids[0]) == budget
    for n in nodes:
        if n.id in kids:
            assert not terminal(n) and len(kids[n.id]) == n.allocation
    leaves = [n for n in nodes[1:] if n.id not in kids]
    terminal_leaves = [n.id for n in leaves if terminal(n)]
    assert [c.node_id for c in res.candidates] == terminal_leaves
    if rounding == "sequential_ceil":
        assert len(res.candidates) == budget and res.info["budget_left"] == 0
    assert res.info["rounds"] == max(n.depth for n in nodes)
    # every generated token recorded exactly once; one PRM entry per scored node
    led = res.ledger
    assert led.tokens("policy", "generated_tokens") == sum(len(n.token_ids) for n in nodes[1:])
    assert sum(e.role == "policy" for e in led.entries) == len(nodes) - 1
    assert sum(e.role == "prm" for e in led.entries) == len(nodes) - 1


@settings(max_examples=100, derandomize=True, deadline=None)
@given(
    budget=st.integers(1, 10),
    n_problems=st.integers(1, 3),
    seed=st.integers(0, 10**6),
    prm_seed=st.integers(0, 100),
    p_final=st.floats(0, 0.6),
    p_eos=st.floats(0, 0.2),
    p_length=st.floats(0, 0.3),
    max_depth=st.integers(1, 6),
    max_tokens=st.integers(4, 40),
    max_step_tokens=st.integers(1, 10),
    t_b=st.sampled_from([0.05, 0.1, 0.2, 1.0]),
    reward=st.sampled_from(["last", "min", "prod", "mean"]),
    rounding=st.sampled_from(["sequential_ceil", "round"]),
)
def test_random_trees_keep_the_budget(
    budget,
    n_problems,
    seed,
    prm_seed,
    p_final,
    p_eos,
    p_length,
    max_depth,
    max_tokens,
    max_step_tokens,
    t_b,
    reward,
    rounding,
):
    gen = FakeGenerator(p_final=p_final, p_eos=p_eos, p_length=p_length, max_len=12)
    prm = FakePRM(seed=prm_seed)
    ctx = make_ctx(gen, prm, seed=seed, max_depth=max_depth, max_tokens=max_tokens, max_step_tokens=max_step_tokens)
    results = Rebase(balance_temperature=t_b, reward=reward, rounding=rounding).search(
        problems(n_problems), budget, ctx
    )
    for res in results:
        _check_tree(res, budget, ctx, rounding)
    assert gen.calls == prm.calls == max(r.info["rounds"] for r in results) <= max_depth


def test_batching_one_call_per_round_and_batch_invariance():
    def run(k):
        gen, prm = FakeGenerator(p_final=0.25, p_eos=0.05, p_length=0.05), FakePRM(seed=3)
        ctx = make_ctx(gen, prm, seed=11, max_tokens=60, max_step_tokens=8, max_depth=10)
        return Rebase().search(problems(k), 6, ctx), gen, prm

    single, gen1, prm1 = run(1)
    batch, gen8, prm8 = run(8)
    depth = lambda r: max(n.depth for n in r.nodes)  # noqa: E731
    assert gen1.calls == prm1.calls == single[0].info["rounds"] == depth(single[0])
    assert gen8.calls == prm8.calls == max(depth(r) for r in batch) == max(r.info["rounds"] for r in batch)
    assert len({depth(r) for r in batch}) > 1  # problems really end at different rounds
    # each call carries every open problem of the round: requests of distinct problems share one call
    assert max(len({r.seed for r in call}) for call in gen8.requests) > len(gen1.requests[0])
    # seeds depend on (problem, node, round) only, so a problem's tree does not depend on its batch
    assert [n.to_json() for n in batch[0].nodes] == [n.to_json() for n in single[0].nodes]
    assert batch[0].ledger.summary() == single[0].ledger.summary()


def test_prm_error_propagates_naming_the_node():
    gen, prm = FakeGenerator(p_final=0.2), FakePRM(fail_tag="problem p1 node 3")
    with pytest.raises(PRMError, match="problem p1 node 3"):
        Rebase().search(problems(2), 4, make_ctx(gen, prm))


# beam search (strategies/beam.py) shares REBASE's round loop; only the allocation differs


def test_beam_allocation():
    from strategies.beam import beam_allocate

    assert beam_allocate(16, REWARDS, 4) == [4, 4, 4, 4]
    assert beam_allocate(10, REWARDS, 4) == [4, 4, 2, 0]
    assert beam_allocate(5, [0.1, 0.9, 0.5], 2) == [1, 2, 2]
    assert beam_allocate(3, [0.5, 0.5, 0.5], 1) == [1, 1, 1]
    assert beam_allocate(0, REWARDS, 4) == [0, 0, 0, 0]
    with pytest.raises(ValueError, match="width"):
        beam_allocate(4, REWARDS, 0)


@settings(max_examples=40, derandomize=True, deadline=None)
@given(
    budget=st.integers(1, 10),
    width=st.integers(1, 5),
    seed=st.integers(0, 10**6),
    p_final=st.floats(0, 0.6),
    p_length=st.floats(0, 0.3),
    max_depth=st.integers(1, 6),
    max_tokens=st.integers(4, 40),
)
def test_beam_search_keeps_the_budget(budget, width, seed, p_final, p_length, max_depth, max_tokens):
    from strategies.beam import BeamSearch

    gen, prm = FakeGenerator(p_final=p_final, p_length=p_length), FakePRM(seed=seed % 7)
    ctx = make_ctx(gen, prm, seed=seed, max_depth=max_depth, max_tokens=max_tokens, max_step_tokens=8)
    results = BeamSearch(beam_width=width).search(problems(2), budget, ctx)
    for res in results:
        _check_tree(res, budget, ctx, "sequential_ceil")
        for d in range(1, max(n.depth for n in res.nodes)):
            # at most ceil(B / M) nodes of a level survive, each with at most M children
            grown = [n for n in res.nodes if n.depth == d and n.allocation]
            assert all(n.allocation <= width for n in grown)
            assert len(grown) <= math.ceil(budget / width)
    assert gen.calls == prm.calls == max(r.info["rounds"] for r in results)


def test_beam_search_registry_and_params():
    from strategies.beam import BeamSearch

    assert STRATEGIES.get("beam_search") is BeamSearch
    assert BeamSearch.needs_prm and BeamSearch().params.beam_width == 4
    with pytest.raises(ValidationError):
        BeamSearch(balance_temperature=0.1)
