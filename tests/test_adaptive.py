"""Adaptive budgets on fakes: the Beta stopping rule, waves batched across problems, exact ledgers.

The fake policy answers from a per-problem profile (always the same answer, mostly one answer,
or scattered over three), so some problems are decided after one wave and others run to the
maximum. Checked: a problem never stops before the rule says (every earlier wave prefix is
undecided) and never exceeds the maximum; each wave is ONE generate call (and ONE PRM call for the
weighted vote) holding only the problems still open; the ledger is exactly the sum of the calls'
tokens; and results for a given seed are the same whatever the batching.
"""

from __future__ import annotations

import random
from dataclasses import replace

import pytest

from rebase.registry import STRATEGIES
from rebase.types import Completion, GenerationRequest
from strategies.aggregators import aggregate, vote_totals, voters
from strategies.stopping import decided, leader_probability
from fakes import FakeGenerator, FakePRM, make_ctx, problems


def test_beta_rule_values():
    # 1 - I_{1/2}(v1 + 1, v2 + 1), as in adaptive-consistency's Beta criterion
    assert leader_probability({"a": 4}) == pytest.approx(1 - 0.5**5)
    assert leader_probability({"a": 3, "b": 1}) == pytest.approx(0.8125)
    assert leader_probability({"a": 6, "b": 1, "c": 1}) == pytest.approx(0.96484375)
    assert leader_probability({}) == 0.0
    assert decided({"a": 4}, 0.95) and not decided({"a": 3, "b": 1}, 0.95)
    # weighted masses are rescaled to the number of voters: scale-free, split by the PRM
    assert leader_probability({"a": 0.4, "b": 0.1}, n_voters=5) == pytest.approx(leader_probability({"a": 4, "b": 1}))
    assert leader_probability({"a": 40.0, "b": 10.0}, n_voters=5) == pytest.approx(leader_probability({"a": 4, "b": 1}))


class PromptGen(FakeGenerator):
    """The sampling strategies send text prompts; tokenise them so prompt tokens are real counts.
    Each problem answers from a profile chosen by its question: 0 always "7", 1 "7" with
    probability 0.7 else "8", 2 uniform over "7", "8", "9"; about 1 sample in 10 is invalid."""

    def __init__(self, **kw):
        super().__init__(script=self._script, **kw)

    def generate(self, requests):
        return super().generate([replace(r, prompt_token_ids=self.encode(r.prompt)) for r in requests])

    def _script(self, req: GenerationRequest, i: int, rng: random.Random) -> Completion:
        profile = sum(req.prompt_token_ids) % 3
        u = rng.random()
        answer = ("7" if profile == 0 else "7" if u < 0.7 else "8") if profile < 2 else rng.choice("789")
        text = "I think so." if rng.random() < 0.1 else f"The answer is {answer}."
        n = rng.randint(3, 9)
        return Completion(
            text=text,
            token_ids=[100] * n,
            finish_reason="stop",
            prompt_tokens=len(req.prompt_token_ids),
            cached_tokens=0,
            generated_tokens=n,
            stop_reason="\n",
        )


def run(name, n_problems=12, budget=32, batch=None, seed=0, **params):
    gen, prm = PromptGen(), FakePRM(seed=1)
    ctx = make_ctx(gen, prm, seed=seed)
    strat = STRATEGIES.get(name)(**params)
    probs = problems(n_problems)
    batch = batch or n_problems
    out = []
    for i in range(0, n_problems, batch):
        out += strat.search(probs[i : i + batch], budget, ctx)
    return out, gen, prm, ctx


@pytest.mark.parametrize("name", ["adaptive_majority", "adaptive_weighted_majority"])
@pytest.mark.parametrize("budget,wave,confidence", [(32, 4, 0.95), (30, 4, 0.9), (10, 3, 0.99), (4, 4, 0.95)])
def test_stops_exactly_when_the_rule_says_and_never_exceeds(name, budget, wave, confidence):
    results, gen, prm, ctx = run(name, budget=budget, wave=wave, confidence=confidence)
    weighted = STRATEGIES.get(name).weighted
    stops = set()
    for res in results:
        rec = res.info["record"]
        used = rec["samples_used"]
        assert used == len(res.candidates) == len(res.info["samples"]) <= budget
        sizes = [min(wave, budget - k * wave) for k in range(rec["waves"])]
        assert sum(sizes) == used  # whole waves, the last one cut to the budget
        prefix, seen = 0, []
        for k, size in enumerate(sizes):  # the rule on every prefix the strategy looked at
            prefix += size
            cands = res.candidates[:prefix]
            totals = vote_totals(cands, weighted, "last", False)
            p = leader_probability(totals, len(voters(cands)) if weighted else None)
            seen.append(p >= confidence)
        assert not any(seen[:-1]), "stopped late: an earlier wave was already decided"
        assert rec["stop"] == ("decided" if seen[-1] else "max_budget")
        assert seen[-1] or used == budget, "stopped early without a decided vote"
        assert rec["leader_probability"] == pytest.approx(p, abs=1e-6)
        stops.add(rec["stop"])
        # the tree holds every sample under one root, candidates point at their nodes
        assert [n.id for n in res.nodes] == list(range(used + 1))
        assert all(res.nodes[c.node_id].text.endswith(".") for c in res.candidates)
    if budget > wave:
        assert stops == {"decided", "max_budget"}  # the profiles give both kinds of problem


@pytest.mark.parametrize("name", ["adaptive_majority", "adaptive_weighted_majority"])
def test_waves_are_batched_and_stopped_problems_drop_out(name):
    results, gen, prm, ctx = run(name, budget=32)
    waves = max(r.info["record"]["waves"] for r in results)
    assert gen.calls == waves
    open_per_wave = [sum(r.info["record"]["waves"] > w for r in results) for w in range(waves)]
    assert [len(reqs) for reqs in gen.requests] == open_per_wave
    assert open_per_wave[0] == 12 and open_per_wave[-1] < 12
    if STRATEGIES.get(name).weighted:
        assert prm.calls == waves
        assert all(all(c.step_scores for c in r.candidates if c.steps) for r in results)
    else:
        assert prm.calls == 0


@pytest.mark.parametrize("name", ["adaptive_majority", "adaptive_weighted_majority"])
def test_ledger_charges_exactly_what_was_spent(name):
    results, gen, prm, ctx = run(name, budget=24)
    for res in results:
        led = res.ledger
        assert led.tokens("policy", "generated_tokens") == sum(s["generated_tokens"] for s in res.info["samples"])
        assert led.tokens("policy", "generated_tokens") == sum(c.generated_tokens for c in res.candidates)
        waves = res.info["record"]["waves"]
        # one entry per sample with the prompt and cache hits the backend reported (none here)
        prompt = res.info["samples"][0]["prompt_tokens"]
        assert led.tokens("policy", "prompt_tokens") == prompt * len(res.candidates)
        assert len([e for e in led.entries if e.role == "policy"]) == len(res.candidates)
        assert waves >= 1
        if STRATEGIES.get(name).weighted:
            assert led.tokens("prm", "prompt_tokens") == sum(s["prm_tokens"] for s in res.info["samples"]) > 0
        else:
            assert led.tokens("prm", "prompt_tokens") == 0
    # the spend across problems equals what the generator produced in all its calls
    total = sum(res.ledger.tokens("policy", "generated_tokens") for res in results)
    fresh = PromptGen()
    produced = sum(c.generated_tokens for reqs in gen.requests for outs in fresh.generate(reqs) for c in outs)
    assert total == produced


@pytest.mark.parametrize("name", ["adaptive_majority", "adaptive_weighted_majority"])
def test_same_results_whatever_the_batching(name):
    def digest(results):
        return [
            (
                r.problem_id,
                [(c.answer, c.generated_tokens, c.step_scores) for c in r.candidates],
                r.info["record"],
                r.ledger.summary(),
            )
            for r in results
        ]

    whole = digest(run(name, budget=32)[0])
    assert digest(run(name, budget=32, batch=1)[0]) == whole
    assert digest(run(name, budget=32, batch=5)[0]) == whole
    assert digest(run(name, budget=32, seed=1)[0]) != whole


@pytest.mark.parametrize("name", ["adaptive_majority", "adaptive_weighted_majority"])
def test_nested_budgets_are_exactly_the_smaller_runs(name):
    # waves are seeded by their index, so a run at a larger maximum repeats the smaller one's waves
    large, *_ = run(name, budget=32)
    strat = STRATEGIES.get(name)()
    for small_budget in (4, 8, 16):
        small, *_ = run(name, budget=small_budget)
        for s, big in zip(small, large):
            cut = strat.at_budget(big, small_budget)
            assert [(c.answer, c.generated_tokens, c.step_scores) for c in cut.candidates] == [
                (c.answer, c.generated_tokens, c.step_scores) for c in s.candidates
            ]
            assert cut.info["record"] == s.info["record"]
            assert cut.ledger.summary() == s.ledger.summary()
            assert [n.to_json() for n in cut.nodes] == [n.to_json() for n in s.nodes]


def test_plan_searches_nested_budgets_once():
    from eval.plan import budget_groups

    cls = STRATEGIES.get("adaptive_majority")
    assert budget_groups(cls, [8, 16, 30, 64], {"wave": 4}) == [[8, 16, 64], [30]]
    assert budget_groups(cls, [8, 16], {"wave": 3}) == [[8], [16]]
    assert budget_groups(STRATEGIES.get("rebase"), [4, 8], {}) == [[4], [8]]


def test_final_answer_is_the_aggregators():
    results, *_ = run("adaptive_weighted_majority", budget=16)
    for res in results:
        assert aggregate("weighted_majority", res.candidates) is not None or not voters(res.candidates)


def test_params_are_validated():
    cls = STRATEGIES.get("adaptive_majority")
    with pytest.raises(Exception):
        cls(confidence=0.4)
    with pytest.raises(Exception):
        cls(wave=0)
    with pytest.raises(Exception):
        cls(waves=4)
    assert cls(wave=8).params.wave == 8 and not cls.needs_prm
    assert STRATEGIES.get("adaptive_weighted_majority").needs_prm


def test_rebase_early_stop_when_finished_candidates_agree(monkeypatch):
    import strategies.tree as tree_mod
    from fakes import fake_extract_answer
    from strategies.rebase import Rebase

    monkeypatch.setattr(tree_mod, "extract_answer", fake_extract_answer)

    def go(answers, **params):
        gen, prm = FakeGenerator(p_final=0.5, answers=answers), FakePRM(seed=2)
        ctx = make_ctx(gen, prm, seed=3, max_tokens=60, max_step_tokens=8, max_depth=10)
        return Rebase(**params).search(problems(6), 32, ctx), gen

    full, gen_full = go(("4",))
    assert all(r.info["budget_left"] == 0 and "record" not in r.info for r in full)
    early, gen_early = go(("4",), stop_confidence=0.95)
    for r in early:
        rec = r.info["record"]
        assert rec["stopped_early"] and rec["budget_left"] > 0
        # the stop came no earlier than the rule allows: the finished candidates' vote is decided
        cands = [c for c in r.candidates if not c.truncated]
        assert leader_probability(vote_totals(cands, True, "last", False), len(voters(cands))) >= 0.95
        assert len(r.candidates) == 32 - rec["budget_left"]
    spent = lambda rs: sum(x.ledger.tokens("policy", "generated_tokens") for x in rs)  # noqa: E731
    assert spent(early) < spent(full) and gen_early.calls <= gen_full.calls
    # scattered answers are rarely decided: the stop must not fire on a split vote
    split, _ = go(("1", "2", "3"), stop_confidence=0.99)
    for r in split:
        cands = [c for c in r.candidates if not c.truncated]
        if r.info["record"]["stopped_early"]:
            assert leader_probability(vote_totals(cands, True, "last", False), len(voters(cands))) >= 0.99
