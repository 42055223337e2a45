"""Tests of beam search's `lookahead` and of `sampling.step_tokens` (strategies/tree.py):

- lookahead: greedy rollouts (temperature 0, n=1) scored at their end change which beam is kept,
  the budget stays exact, rollout tokens are charged in the ledger and counted in info, and a round
  still makes one PRM call;
- step_tokens: steps are K-token cuts with no stop string, the PRM receives the cuts as steps, a
  solution finishes only once the answer is complete (a cut in the middle of "12" does not finish
  it), and the candidate's answer is read from the joined text."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from rebase.tasks.prompts import PromptFormat
from fakes import EOS_ID, FakeGenerator, FakePRM, NamedSteps, make_ctx, problems
from rebase.config import SamplingConfig
from rebase.types import Completion
from strategies.beam import BeamSearch
from strategies.dvts import DVTS
from strategies.particle_filtering import ParticleFiltering
from strategies.rebase import Rebase
from strategies.tree import terminal


pytestmark = pytest.mark.usefixtures("fake_answers")


def _lookahead_generator():
    """Depth 1: "a" (scored 0.6) and "b" (0.5). A greedy rollout of "a" writes "a+" (0.1), of "b"
    writes "b+" (0.9). Sampled steps below depth 1 give the answer."""

    def write(req, i, depth):
        if depth == 0:
            return "ab"[i % 2]
        return script.parent(req) + "+" if req.temperature == 0 else f"The answer is {i}."

    script = NamedSteps(write)

    return FakeGenerator(script=script), FakePRM(fixed={"a": 0.6, "b": 0.5, "a+": 0.1, "b+": 0.9})


@pytest.mark.parametrize("lookahead,kept", [(0, "a"), (1, "b")])
def test_lookahead_changes_which_beam_is_kept(lookahead, kept):
    gen, prm = _lookahead_generator()
    (res,) = BeamSearch(beam_width=2, lookahead=lookahead).search(problems(1), 2, make_ctx(gen, prm))
    depth1 = {n.text: n for n in res.nodes if n.depth == 1}
    assert [t for t, n in depth1.items() if n.allocation] == [kept]
    # the aggregators read the node's own path scores; the rollout only steers the choice
    assert depth1["b"].step_scores == [0.5]
    assert depth1["b"].reward == (0.9 if lookahead else 0.5)
    assert "a+" not in {n.text for n in res.nodes}  # the rollout is not kept in the tree
    rollout_calls = [c for c in gen.requests if c[0].temperature == 0]
    assert len(rollout_calls) == lookahead and prm.calls == res.info["rounds"] == 2
    if lookahead:
        assert all(r.n == 1 for r in rollout_calls[0]) and res.info["rollout_tokens"] == 4
    else:
        assert "rollout_tokens" not in res.info


def test_lookahead_param():
    assert BeamSearch().params.lookahead == 0
    with pytest.raises(ValidationError):
        BeamSearch(lookahead=-1)


@settings(max_examples=40, derandomize=True, deadline=None)
@given(
    budget=st.integers(1, 8),
    width=st.integers(1, 4),
    lookahead=st.integers(1, 3),
    seed=st.integers(0, 10**6),
    p_final=st.floats(0, 0.5),
    p_eos=st.floats(0, 0.2),
    max_depth=st.integers(1, 6),
    max_tokens=st.integers(4, 40),
    dvts=st.booleans(),
)
def test_lookahead_keeps_the_budget_and_charges_rollouts(
    budget, width, lookahead, seed, p_final, p_eos, max_depth, max_tokens, dvts
):
    gen, prm = FakeGenerator(p_final=p_final, p_eos=p_eos, max_len=10), FakePRM(seed=seed % 5)
    ctx = make_ctx(gen, prm, seed=seed, max_depth=max_depth, max_tokens=max_tokens, max_step_tokens=8)
    strat = (DVTS if dvts else BeamSearch)(beam_width=width, lookahead=lookahead)
    results = strat.search(problems(2), budget, ctx)
    for res in results:
        tree_tokens = sum(len(n.token_ids) for n in res.nodes[1:])
        rollout = res.info.get("rollout_tokens", 0)
        assert res.ledger.tokens("policy", "generated_tokens") == tree_tokens + rollout
        for n in res.nodes[1:]:
            assert len(n.step_scores) == n.depth and n.path_tokens <= max_tokens
        kids = {n.parent for n in res.nodes[1:]}
        leaves = [n for n in res.nodes[1:] if n.id not in kids]
        if not dvts:
            assert len([n for n in leaves if terminal(n)]) == budget == len(res.candidates)
    assert prm.calls == max(r.info["rounds"] for r in results)
    assert gen.calls <= prm.calls * (1 + lookahead)
    for call in gen.requests:
        if call[0].temperature == 0:
            assert all(r.n == 1 and r.temperature == 0 for r in call)


# --- step_tokens -------------------------------------------------------------------------------


def test_answer_complete():
    pf = PromptFormat.from_config("gsm8k")
    assert not pf.answer_complete("x = 3\nThe answer is 1")  # cut inside "12"
    assert not pf.answer_complete("x = 3\nThe answer is")
    assert pf.answer_complete("x = 3\nThe answer is 12.\nQuestion")
    assert not pf.answer_complete("no marker here\n")
    pm = PromptFormat.from_config("math500")
    assert not pm.answer_complete("so \\boxed{\\frac{1}{2")
    assert pm.answer_complete("so \\boxed{\\frac{1}{2}} and more")
    assert not pm.answer_complete("no box")


def test_step_tokens_in_config():
    assert SamplingConfig().step_tokens is None
    assert SamplingConfig(step_tokens=16).step_tokens == 16
    with pytest.raises(ValidationError):
        SamplingConfig(step_tokens=0)


SOLUTION = "x=3+9\nThe answer is 12.\nQuestion: next"


def _stream_generator():
    """Writes SOLUTION one character per token whatever the sampling, then EOS; token id 5000 + i
    stands for character i, so a request's ids say where its path is."""

    def script(req, i, rng):
        ids = req.prompt_token_ids
        start = ids[-1] - 5000 + 1 if ids[-1] >= 5000 else 0
        end = min(start + req.max_tokens, len(SOLUTION))
        text, toks = SOLUTION[start:end], [5000 + j for j in range(start, end)]
        reason = "length"
        if end == len(SOLUTION) and len(toks) < req.max_tokens:
            toks, reason = toks + [EOS_ID], "eos"
        return Completion(
            text=text,
            token_ids=toks,
            finish_reason=reason,
            prompt_tokens=len(ids),
            cached_tokens=0,
            generated_tokens=len(toks),
        )

    return FakeGenerator(script=script), FakePRM(seed=1)


@pytest.mark.parametrize("strategy", [Rebase(), ParticleFiltering(), DVTS(beam_width=2), BeamSearch(lookahead=1)])
def test_step_tokens_cut_by_count_and_finish_on_a_complete_answer(strategy):
    gen, prm = _stream_generator()
    ctx = make_ctx(gen, prm, step_tokens=3, max_tokens=64, max_depth=20)
    (res,) = strategy.search(problems(1), 2, ctx)
    assert all(r.stop == () and r.max_tokens == 3 for call in gen.requests for r in call)
    path = [n for n in res.nodes if n.depth == 8]
    assert path and all(n.text == "2.\n" and n.finished for n in path)
    # depth 7 ends "…The answer is 1": the marker is there, the answer is not finished yet
    assert all(n.text == "s 1" and not n.finished for n in res.nodes if n.depth == 7)
    assert all(len(c.steps) == 8 and c.answer == "12" and c.finished for c in res.candidates)
    assert res.candidates and "".join(res.candidates[0].steps) == SOLUTION[:24]
    # the PRM scored the 3-token cuts as steps
    assert ["x=3", "+9\n", "The"] == [r.steps for call in prm.requests for r in call if len(r.steps) == 3][0]
