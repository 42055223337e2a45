"""Tests of MCTS (strategies/mcts.py): widths, budget = expansions, UCT selection, running-mean
backup, exhausted trees, the fallback candidate, virtual loss, batching and exact ledgers."""

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
from strategies.mcts import MCTS
from strategies.tree import terminal


@pytest.fixture(autouse=True)
def _answers(monkeypatch):
    monkeypatch.setattr(tree_mod, "extract_answer", fake_extract_answer)


def _subtree(nodes, kids, n):
    out = []
    for k in kids.get(n.id, []):
        out += [k] + _subtree(nodes, kids, k)
    return out


def _check_tree(res, budget, params, ctx):
    nodes = res.nodes
    kids = {}
    for n in nodes[1:]:
        kids.setdefault(n.parent, []).append(n)
    expanded = [n for n in nodes if n.id in kids]
    assert res.info["expansions"] == len(expanded) <= budget
    if not res.info["exhausted"]:
        assert len(expanded) == budget
    else:  # stopping early is only allowed when no leaf is left to expand
        assert all(terminal(n) for n in nodes[1:] if n.id not in kids)
    for n in expanded:
        assert not terminal(n) and n.allocation == len(kids[n.id])
        assert n.allocation == (params.root_width if n.parent is None else params.inner_width)
    # backup: a node's visits count itself and every descendant, Q is the mean of their values
    for n in nodes:
        below = _subtree(nodes, kids, n)
        own = [] if n.parent is None else [n]
        assert n.visits == len(own) + len(below)
        if n.visits:
            assert math.isclose(n.value, sum(m.reward for m in own + below) / n.visits, abs_tol=1e-9)
    term = [n.id for n in nodes[1:] if n.id not in kids and terminal(n)]
    ids = [c.node_id for c in res.candidates]
    assert ids[: len(term)] == term and len(ids) - len(term) <= 1
    if len(ids) > len(term):  # the fallback: best open leaf when nothing finished
        assert not any(nodes[i].finished for i in term)
        open_leaves = [n for n in nodes[1:] if n.id not in kids and not terminal(n)]
        assert nodes[ids[-1]].reward == max(n.reward for n in open_leaves) and res.candidates[-1].truncated
    led = res.ledger
    assert led.tokens("policy", "generated_tokens") == sum(len(n.token_ids) for n in nodes[1:])
    assert sum(e.role == "policy" for e in led.entries) == sum(e.role == "prm" for e in led.entries) == len(nodes) - 1


def test_params_and_registry():
    assert STRATEGIES.get("mcts") is MCTS
    assert MCTS.needs_prm and MCTS.default_aggregator == "weighted_majority"
    p = MCTS().params
    assert (p.exploration, p.root_width, p.inner_width, p.parallel) == (1.0, 4, 2, 1)
    with pytest.raises(ValidationError):
        MCTS(root_width=0)
    with pytest.raises(ValidationError):
        MCTS(width=3)


def test_budget_counts_expansions_and_widths():
    gen, prm = FakeGenerator(p_final=0.0), FakePRM()
    ctx = make_ctx(gen, prm, max_depth=25, max_tokens=1024)
    (res,) = MCTS(root_width=8).search(problems(1), 6, ctx)
    assert len(res.nodes) == 1 + 8 + 5 * 2
    assert gen.calls == prm.calls == res.info["rounds"] == 6
    assert [r.n for call in gen.requests for r in call] == [8, 2, 2, 2, 2, 2]
    _check_tree(res, 6, MCTS(root_width=8).params, ctx)
    # nothing finished: the best open leaf is the one (truncated) candidate
    assert len(res.candidates) == 1 and res.candidates[0].truncated and not res.candidates[0].finished


def test_uct_expands_the_best_child_and_explores():
    def script(req, i, rng):
        deeper = req.prompt_token_ids[-1] == DELIM_ID
        text = "x" if deeper else "abcd"[i]
        return Completion(
            text=text,
            token_ids=[100 + i, DELIM_ID],
            finish_reason="stop",
            prompt_tokens=len(req.prompt_token_ids),
            cached_tokens=0,
            generated_tokens=2,
        )

    prm = FakePRM(fixed={"a": 0.2, "b": 0.9, "c": 0.5, "d": 0.1, "x": 0.8})
    ctx = make_ctx(FakeGenerator(script=script), prm)
    (res,) = MCTS(exploration=1.0).search(problems(1), 2, ctx)
    assert [n.text for n in res.nodes if n.allocation == 2] == ["b"]  # equal visits: highest Q wins
    # then b's subtree has Q = (0.9 + 0.8 + 0.8) / 3 > 0.5: pure exploitation goes deeper under b,
    # a huge exploration constant prefers the less visited c (ties in visits broken by Q)
    picks = {}
    for c in (0.0, 100.0):
        ctx = make_ctx(FakeGenerator(script=script), prm)
        (res,) = MCTS(exploration=c).search(problems(1), 3, ctx)
        picks[c] = [(n.text, n.depth) for n in res.nodes if n.allocation == 2]
    assert picks == {0.0: [("b", 1), ("x", 2)], 100.0: [("b", 1), ("c", 1)]}


def test_exhausted_tree_stops_early():
    gen, prm = FakeGenerator(p_final=1.0), FakePRM()
    ctx = make_ctx(gen, prm)
    (res,) = MCTS().search(problems(1), 32, ctx)
    assert gen.calls == 1 and res.info["exhausted"] and res.info["expansions"] == 1
    assert len(res.candidates) == 4 and all(c.finished for c in res.candidates)


def test_parallel_selection_with_virtual_loss():
    gen, prm = FakeGenerator(p_final=0.0), FakePRM()
    ctx = make_ctx(gen, prm)
    (res,) = MCTS(parallel=3).search(problems(1), 7, ctx)
    # round 1: the root is the only leaf; then 3 distinct leaves per round
    assert [len(call) for call in gen.requests] == [1, 3, 3]
    for call in gen.requests:
        assert len({tuple(r.prompt_token_ids) for r in call}) == len(call)
    # virtual loss spreads the round-2 picks over three different root children
    assert sorted(n.depth for n in res.nodes if n.allocation == 2)[:3] == [1, 1, 1]
    _check_tree(res, 7, MCTS(parallel=3).params, ctx)


@settings(max_examples=60, derandomize=True, deadline=None)
@given(
    budget=st.integers(1, 12),
    n_problems=st.integers(1, 3),
    seed=st.integers(0, 10**6),
    prm_seed=st.integers(0, 100),
    p_final=st.floats(0, 0.7),
    p_eos=st.floats(0, 0.2),
    p_length=st.floats(0, 0.3),
    max_depth=st.integers(1, 6),
    max_tokens=st.integers(4, 40),
    root_width=st.integers(1, 5),
    inner_width=st.integers(1, 3),
    parallel=st.integers(1, 3),
    exploration=st.sampled_from([0.0, 1.0, 3.0]),
    reward=st.sampled_from(["last", "min", "mean"]),
)
def test_random_trees_keep_invariants(
    budget,
    n_problems,
    seed,
    prm_seed,
    p_final,
    p_eos,
    p_length,
    max_depth,
    max_tokens,
    root_width,
    inner_width,
    parallel,
    exploration,
    reward,
):
    gen, prm = FakeGenerator(p_final=p_final, p_eos=p_eos, p_length=p_length), FakePRM(seed=prm_seed)
    ctx = make_ctx(gen, prm, seed=seed, max_depth=max_depth, max_tokens=max_tokens, max_step_tokens=8)
    strat = MCTS(
        root_width=root_width, inner_width=inner_width, parallel=parallel, exploration=exploration, reward=reward
    )
    results = strat.search(problems(n_problems), budget, ctx)
    for res in results:
        _check_tree(res, budget, strat.params, ctx)
    assert gen.calls == prm.calls == max(r.info["rounds"] for r in results)


def test_batching_one_call_per_round_and_batch_invariance():
    def run(k):
        gen, prm = FakeGenerator(p_final=0.5, p_eos=0.05), FakePRM(seed=5)
        ctx = make_ctx(gen, prm, seed=2, max_depth=3, max_tokens=60, max_step_tokens=8)
        return MCTS().search(problems(k), 12, ctx), gen, prm

    single, gen1, prm1 = run(1)
    batch, gen8, prm8 = run(8)
    assert gen1.calls == prm1.calls == single[0].info["rounds"]
    assert gen8.calls == prm8.calls == max(r.info["rounds"] for r in batch)
    assert len({r.info["rounds"] for r in batch}) > 1  # some problems exhaust their tree early
    assert max(len(call) for call in gen8.requests) == 8  # one request per open problem per call
    assert [n.to_json() for n in batch[0].nodes] == [n.to_json() for n in single[0].nodes]
    assert batch[0].ledger.summary() == single[0].ledger.summary()


def test_prm_error_propagates_naming_the_node():
    gen, prm = FakeGenerator(p_final=0.0), FakePRM(fail_tag="problem p0 node 6")
    with pytest.raises(PRMError, match="problem p0 node 6"):
        MCTS().search(problems(2), 4, make_ctx(gen, prm))
