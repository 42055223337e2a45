"""Tests of DVTS (strategies/dvts.py): how the budget splits into subtrees, greedy selection by the
PRM inside each subtree with no competition between subtrees (a worked tree with known scores), the
structure of random searches (N first steps, M children per kept node, at most N / M kept nodes per
level, candidates = terminal leaves), one generate and one score call per round, batch invariance
and exact ledgers."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from fakes import FakeGenerator, FakePRM, NamedSteps, check_tree_basics, make_ctx, problems
from rebase.registry import STRATEGIES
from strategies.aggregators import aggregate
from strategies.dvts import DVTS, subtree_widths
from strategies.tree import terminal


pytestmark = pytest.mark.usefixtures("fake_answers")


def test_subtree_widths():
    assert subtree_widths(16, 4) == [4, 4, 4, 4]
    assert subtree_widths(10, 4) == [4, 4, 2]
    assert subtree_widths(3, 4) == [3]
    assert subtree_widths(5, 1) == [1] * 5
    with pytest.raises(ValueError, match="budget"):
        subtree_widths(0, 4)


def test_params_and_registry():
    assert STRATEGIES.get("dvts") is DVTS
    assert DVTS.__doc__ and DVTS.__doc__.strip()  # the line `rebase ls` shows
    assert DVTS.needs_prm and DVTS.default_aggregator == "weighted_majority"
    assert DVTS().params.beam_width == 4 and DVTS().params.lookahead == 0
    with pytest.raises(ValidationError):
        DVTS(beam_width=0)
    with pytest.raises(ValidationError):
        DVTS(balance_temperature=0.1)


def _worked_generator():
    """Step i of a request is named by its position: depth 1 "a".."h"; depth 2 "<parent>0".."<parent>1";
    depth 3 gives the answer. Scores: the first subtree's steps (a-d) all score below the second's."""

    def write(req, i, depth):
        if depth == 0:
            return "abcdefgh"[i]
        return f"{script.parent(req)}{i}" if depth == 1 else f"The answer is {i}."

    script = NamedSteps(write)

    scores = {
        "a": 0.1,
        "b": 0.3,
        "c": 0.2,
        "d": 0.05,
        "e": 0.9,
        "f": 0.8,
        "g": 0.95,
        "h": 0.7,
        "b0": 0.2,
        "b1": 0.6,
        "b2": 0.0,
        "b3": 0.1,
        "g0": 0.5,
        "g1": 0.4,
        "g2": 0.0,
        "g3": 0.3,
    }
    return FakeGenerator(script=script), FakePRM(fixed=scores)


def test_worked_tree_keeps_each_subtrees_best_child():
    gen, prm = _worked_generator()
    (res,) = DVTS(beam_width=4).search(problems(1), 8, make_ctx(gen, prm))
    by_text = {n.text: n for n in res.nodes}
    # two subtrees (a-d, e-h); each keeps its own best even though all of a-d lose to e-h
    assert [n.text for n in res.nodes if n.depth == 1] == list("abcdefgh")
    expanded = sorted(n.text for n in res.nodes if n.depth == 1 and n.allocation)
    assert expanded == ["b", "g"] and by_text["b"].allocation == by_text["g"].allocation == 4
    assert res.nodes[0].allocation == 8
    # depth 2: b's four children b0..b3 and g's g0..g3; b1 (0.6) and g0 (0.5) are kept
    kept2 = sorted(n.text for n in res.nodes if n.depth == 2 and n.allocation)
    assert kept2 == ["b1", "g0"]
    # depth 3 all finish: the kept paths end there; candidates = the 8 finished leaves
    assert all(terminal(n) for n in res.nodes if n.depth == 3)
    assert len(res.candidates) == 8 and res.info == {"rounds": 3, "subtrees": 2}
    assert gen.calls == prm.calls == 3
    assert aggregate("weighted_majority", res.candidates) is not None


def _check_dvts(res, budget, width, ctx):
    nodes = res.nodes
    kids = check_tree_basics(res, ctx)
    widths = subtree_widths(budget, width)
    assert len(kids[0]) == budget == nodes[0].allocation
    for n in nodes[1:]:
        if n.id in kids:
            # a kept node: open, the best of its siblings, expanded into its subtree's width
            assert not terminal(n) and len(kids[n.id]) == n.allocation and n.allocation in widths
            sibs = kids[n.parent]
            if n.parent != 0:
                assert n.reward == max(s.reward for s in sibs)
    for d in range(1, max(n.depth for n in nodes) + 1):
        assert sum(1 for n in nodes if n.depth == d and n.id in kids) <= len(widths)


@settings(max_examples=60, derandomize=True, deadline=None)
@given(
    budget=st.integers(1, 12),
    width=st.integers(1, 5),
    n_problems=st.integers(1, 3),
    seed=st.integers(0, 10**6),
    p_final=st.floats(0, 0.6),
    p_eos=st.floats(0, 0.2),
    p_length=st.floats(0, 0.3),
    max_depth=st.integers(1, 6),
    max_tokens=st.integers(4, 40),
    reward=st.sampled_from(["last", "min", "prod", "mean"]),
)
def test_random_searches_keep_the_structure(
    budget, width, n_problems, seed, p_final, p_eos, p_length, max_depth, max_tokens, reward
):
    gen = FakeGenerator(p_final=p_final, p_eos=p_eos, p_length=p_length, max_len=12)
    prm = FakePRM(seed=seed % 13)
    ctx = make_ctx(gen, prm, seed=seed, max_depth=max_depth, max_tokens=max_tokens, max_step_tokens=8)
    results = DVTS(beam_width=width, reward=reward).search(problems(n_problems), budget, ctx)
    for res in results:
        _check_dvts(res, budget, width, ctx)
        assert res.info["subtrees"] == math.ceil(budget / width)
        assert res.info["rounds"] == max(n.depth for n in res.nodes)
        # the search ran until every subtree's kept node was terminal: at the last level with
        # kept nodes there is nothing open left to keep
        assert len(res.candidates) >= 1
    assert gen.calls == prm.calls == max(r.info["rounds"] for r in results) <= max_depth


def test_one_call_per_round_and_batch_invariance():
    def run(k):
        gen, prm = FakeGenerator(p_final=0.2, p_eos=0.05, p_length=0.05), FakePRM(seed=3)
        ctx = make_ctx(gen, prm, seed=11, max_tokens=60, max_step_tokens=8, max_depth=10)
        return DVTS(beam_width=2).search(problems(k), 6, ctx), gen, prm

    single, gen1, prm1 = run(1)
    batch, gen8, prm8 = run(8)
    assert gen1.calls == prm1.calls == single[0].info["rounds"]
    assert gen8.calls == prm8.calls == max(r.info["rounds"] for r in batch)
    assert len({r.info["rounds"] for r in batch}) > 1
    # round 0: one request of N per problem; later rounds: one request per live subtree
    assert [r.n for r in gen8.requests[0]] == [6] * 8
    assert all(r.n == 2 for call in gen8.requests[1:] for r in call)
    assert [n.to_json() for n in batch[0].nodes] == [n.to_json() for n in single[0].nodes]
    assert batch[0].ledger.summary() == single[0].ledger.summary()
