"""Tests of the shared tree machinery (strategies/tree.py): request building, node states under the
token and depth caps, exact ledger accounting, PRM scoring and its failures, candidates."""

from __future__ import annotations

import pytest

import strategies.tree as tree_mod
from fakes import DELIM_ID, EOS_ID, FakeGenerator, FakePRM, fake_extract_answer, make_ctx, problems
from rebase.errors import PRMError, RunFailure
from rebase.types import Completion
from strategies.base import request_seed
from strategies.tree import expand, new_trees, score, terminal


@pytest.fixture(autouse=True)
def _answers(monkeypatch):
    monkeypatch.setattr(tree_mod, "extract_answer", fake_extract_answer)


def scripted(outcomes):
    """A generator whose sample i (of every request) is outcomes[i] = (reason, text, n_tokens)."""

    def script(req, i, rng):
        reason, text, n = outcomes[i]
        n = min(n, req.max_tokens)
        ids = [100 + j for j in range(n)]
        ids[-1] = {"eos": EOS_ID, "stop": DELIM_ID}.get(reason, ids[-1])
        return Completion(
            text=text,
            token_ids=ids,
            finish_reason=reason,
            prompt_tokens=len(req.prompt_token_ids),
            cached_tokens=0,
            generated_tokens=n,
            stop_reason="\n" if reason == "stop" else None,
        )

    return FakeGenerator(script=script)


def test_requests_carry_path_ids_caps_and_seeds():
    gen, prm = FakeGenerator(p_final=0.0), FakePRM()
    ctx = make_ctx(gen, prm, seed=7, temperature=0.7, top_p=0.9, max_step_tokens=5, max_tokens=12)
    (t,) = new_trees(problems(1), ctx)
    assert t.root.token_ids == gen.encode(t.root.text) and t.root.depth == 0
    ((_, kids),) = expand([(t, t.root, 3)], ctx, 0)
    req = gen.requests[0][0]
    assert (req.n, req.stop, req.temperature, req.top_p, req.max_tokens) == (3, ("\n",), 0.7, 0.9, 5)
    assert req.seed == request_seed(7, "p0", 0, 0)
    child = kids[0]
    expand([(t, child, 2)], ctx, 1)
    req = gen.requests[1][0]
    # a child continues from exactly the ids its parent generated
    assert req.prompt_token_ids == t.root.token_ids + child.token_ids
    assert req.max_tokens == min(5, 12 - child.path_tokens)
    assert req.seed == request_seed(7, "p0", child.id, 1)
    assert [n.id for n in t.kids(child)] == [4, 5] and all(n.depth == 2 for n in t.kids(child))


def test_node_states_under_caps():
    outcomes = [
        ("stop", "s0", 2),
        ("stop", "The answer is 4.", 2),
        ("eos", "s2", 2),
        ("length", "s3", 4),
        ("stop", "s4", 4),
    ]
    gen = scripted(outcomes)
    ctx = make_ctx(gen, FakePRM(), max_step_tokens=4, max_tokens=6, max_depth=3)
    (t,) = new_trees(problems(1), ctx)
    ((_, kids),) = expand([(t, t.root, 5)], ctx, 0)
    plain, final, eos, length, full_step = kids
    assert not terminal(plain) and plain.path_tokens == 2
    assert final.finished and not final.truncated
    assert eos.finished and eos.finish_reason == "eos"
    # a step cut by max_step_tokens with solution budget left is a partial step, not an end
    assert not terminal(length) and length.finish_reason == "length"
    assert not terminal(full_step)
    # the next step of `length` may use only 6 - 4 = 2 tokens: reaching the cap truncates it
    ((_, kids2),) = expand([(t, length, 1)], ctx, 1)
    assert gen.requests[1][0].max_tokens == 2
    assert kids2[0].truncated and not kids2[0].finished and kids2[0].path_tokens == 6
    # depth cap: a plain step at depth 3 is truncated
    ((_, d2),) = expand([(t, plain, 1)], ctx, 2)
    ((_, d3),) = expand([(t, d2[0], 1)], ctx, 3)
    assert d3[0].depth == 3 and d3[0].truncated
    with pytest.raises(ValueError, match="terminal"):
        expand([(t, final, 1)], ctx, 4)


def test_one_call_per_round_and_exact_ledger():
    gen, prm = FakeGenerator(p_final=0.2, p_eos=0.1, p_length=0.1, cached=True), FakePRM(role="judge")
    ctx = make_ctx(gen, prm, max_tokens=30)
    trees = new_trees(problems(3), ctx)
    groups = expand([(t, t.root, 2 + i) for i, t in enumerate(trees)], ctx, 0)
    new = [(t, n) for t, kids in groups for n in kids]
    score(new, ctx, "last")
    assert gen.calls == 1 and prm.calls == 1 and len(prm.requests[0]) == 2 + 3 + 4
    assert [r.tag for r in prm.requests[0]][:2] == ["problem p0 node 1", "problem p0 node 2"]
    for t in trees:
        gen_nodes = t.nodes[1:]
        pol = [e for e in t.ledger.entries if e.role == "policy"]
        assert len(pol) == len(gen_nodes)  # one entry per completion, each token once
        assert t.ledger.tokens("policy", "generated_tokens") == sum(len(n.token_ids) for n in gen_nodes)
        assert t.ledger.tokens("policy", "cached_tokens") == len(gen_nodes) * (len(t.root.token_ids) - 1)
        assert [e.role for e in t.ledger.entries].count("judge") == len(gen_nodes)
        for n in gen_nodes:
            assert len(n.step_scores) == 1 and n.reward == n.step_scores[-1]


def test_reward_reduction_over_path():
    gen, prm = FakeGenerator(p_final=0.0), FakePRM()
    ctx = make_ctx(gen, prm)
    (t,) = new_trees(problems(1), ctx)
    ((_, kids),) = expand([(t, t.root, 1)], ctx, 0)
    ((_, kids2),) = expand([(t, kids[0], 1)], ctx, 1)
    score([(t, kids2[0])], ctx, "min")
    s = kids2[0].step_scores
    assert len(s) == 2 and kids2[0].reward == min(s)
    assert s == [prm.step_score(t.problem.question, i, x) for i, x in enumerate(t.steps(kids2[0]))]


def test_prm_errors_name_the_node_and_never_drop_a_child():
    gen = FakeGenerator(p_final=0.0)
    for prm, pattern in (
        (FakePRM(fail_tag="problem p1 node 2"), "problem p1 node 2"),
        (FakePRM(short_tag="problem p0 node 1"), "problem p0 node 1: PRM fake-prm gave 0 scores"),
    ):
        ctx = make_ctx(gen, prm)
        trees = new_trees(problems(2), ctx)
        groups = expand([(t, t.root, 2) for t in trees], ctx, 0)
        with pytest.raises(PRMError, match=pattern):
            score([(t, n) for t, kids in groups for n in kids], ctx)


def test_generator_returning_too_few_completions_is_a_run_failure():
    gen = FakeGenerator()
    gen.generate = lambda reqs: [[] for _ in reqs]
    ctx = make_ctx(gen, FakePRM())
    (t,) = new_trees(problems(1), ctx)
    with pytest.raises(RunFailure, match="problem p0 node 0"):
        expand([(t, t.root, 2)], ctx, 0)


def test_candidates_are_terminal_leaves_with_answers():
    outcomes = [("stop", "s0", 2), ("stop", "The answer is 4.", 3)]
    ctx = make_ctx(scripted(outcomes), FakePRM(), dataset="gsm8k")
    (t,) = new_trees(problems(1), ctx)
    ((_, kids),) = expand([(t, t.root, 2)], ctx, 0)
    ((_, kids2),) = expand([(t, kids[0], 2)], ctx, 1)
    score([(t, n) for n in kids + kids2], ctx)
    cands = t.candidates(ctx)
    assert [c.node_id for c in cands] == [2, 4]
    assert cands[0].steps == ["The answer is 4."] and cands[0].answer == "4" and cands[0].generated_tokens == 3
    assert cands[1].steps == ["s0", "The answer is 4."] and cands[1].generated_tokens == 5
    assert cands[1].step_scores == kids2[1].step_scores and cands[1].finished and not cands[1].truncated
    res = t.result(cands, {"rounds": 2})
    assert res.problem_id == "p0" and res.nodes is t.nodes and res.ledger is t.ledger
    assert all(
        set(n.to_json()) >= {"id", "parent", "depth", "text", "step_scores", "token_ids", "allocation"}
        for n in res.nodes
    )
