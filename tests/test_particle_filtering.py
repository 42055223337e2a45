"""Tests of particle filtering (strategies/particle_filtering.py): the weights with exact values,
both resamplers checked statistically (unbiased counts, systematic's floor/ceil property and lower
variance), the budget (exactly N final particles over random trees), one generate and one score
call per round, seeded reproducibility and batch invariance, and selection pressure of the
temperature measured through a whole search."""

from __future__ import annotations

import math
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from fakes import FakeGenerator, FakePRM, NamedSteps, check_tree_basics, make_ctx, problems
from rebase.registry import STRATEGIES
from strategies.particle_filtering import ParticleFiltering, multinomial, particle_weights, resample, systematic
from strategies.tree import terminal


pytestmark = pytest.mark.usefixtures("fake_answers")


def test_weights_are_softmax_of_logits_with_temperature():
    assert particle_weights([0.5, 0.75], 1.0) == pytest.approx([0.25, 0.75])  # logits 0 and ln 3
    r3 = math.sqrt(3)
    assert particle_weights([0.5, 0.75], 2.0) == pytest.approx([1 / (1 + r3), r3 / (1 + r3)])
    # scores of exactly 0 and 1 are clipped, not infinite; equal scores give equal weights
    w = particle_weights([0.0, 1.0, 1.0], 1.0)
    assert all(math.isfinite(x) for x in w) and w[1] == w[2] and w[0] < 1e-12
    assert particle_weights([0.3, 0.3, 0.3, 0.3], 0.5) == pytest.approx([0.25] * 4)
    with pytest.raises(ValueError, match="temperature"):
        particle_weights([0.5], 0.0)


@pytest.mark.parametrize("method", ["multinomial", "systematic"])
def test_resampling_is_unbiased(method):
    """Mean copies per particle over 4000 draws match n * w_j within 4 standard errors."""
    rewards, n, draws = [0.9, 0.6, 0.4, 0.2, 0.05], 7, 4000
    w = particle_weights(rewards, 1.0)
    totals = [0] * len(rewards)
    sq = [0] * len(rewards)
    for k in range(draws):
        counts = resample(rewards, n, 1.0, method, random.Random(k))
        assert sum(counts) == n and min(counts) >= 0
        for j, c in enumerate(counts):
            totals[j] += c
            sq[j] += c * c
    for j in range(len(rewards)):
        mean = totals[j] / draws
        var = max(sq[j] / draws - mean**2, 1e-4)
        assert abs(mean - n * w[j]) < 4 * math.sqrt(var / draws), (method, j, mean, n * w[j])


def test_multinomial_matches_the_binomial_variance():
    """Each particle's count is Binomial(n, w_j): the sample variance is n w (1 - w) within 10%."""
    w, n, draws = [0.5, 0.3, 0.2], 10, 6000
    counts = [multinomial(w, n, random.Random(k))[0] for k in range(draws)]
    mean = sum(counts) / draws
    var = sum((c - mean) ** 2 for c in counts) / (draws - 1)
    assert var == pytest.approx(n * 0.5 * 0.5, rel=0.1)


def test_systematic_counts_are_floor_or_ceil_and_vary_less():
    w, n = particle_weights([0.9, 0.7, 0.5, 0.3, 0.1], 1.0), 9
    var_sys, var_mult = [0.0] * 5, [0.0] * 5
    for k in range(2000):
        sys_c = systematic(w, n, random.Random(k))
        mult_c = multinomial(w, n, random.Random(k))
        for j in range(5):
            assert math.floor(n * w[j]) <= sys_c[j] <= math.ceil(n * w[j])
            var_sys[j] += (sys_c[j] - n * w[j]) ** 2
            var_mult[j] += (mult_c[j] - n * w[j]) ** 2
    assert sum(var_sys) < 0.5 * sum(var_mult)


def test_resample_edge_cases():
    rng = random.Random(0)
    assert resample([], 4, 1.0, "multinomial", rng) == []
    assert resample([0.4, 0.6], 0, 1.0, "systematic", rng) == [0, 0]
    assert resample([0.7], 5, 1.0, "systematic", rng) == [5]
    with pytest.raises(ValueError, match="resampling"):
        resample([0.5], 2, 1.0, "stratified", rng)


def test_params_and_registry():
    assert STRATEGIES.get("particle_filtering") is ParticleFiltering
    assert ParticleFiltering.__doc__ and ParticleFiltering.__doc__.strip()  # the line `rebase ls` shows
    assert ParticleFiltering.needs_prm and ParticleFiltering.default_aggregator == "weighted_majority"
    p = ParticleFiltering().params
    assert (p.temperature, p.resampling, p.reward) == (1.0, "multinomial", "last")
    with pytest.raises(ValidationError):
        ParticleFiltering(temperature=0)
    with pytest.raises(ValidationError):
        ParticleFiltering(resampling="residual")
    with pytest.raises(ValidationError):
        ParticleFiltering(balance_temperature=0.1)


def _check_particles(res, budget, ctx):
    nodes = res.nodes
    kids = check_tree_basics(res, ctx)
    assert len(kids[0]) == budget == nodes[0].allocation
    for n in nodes[1:]:
        if n.id in kids:  # a particle drawn k times has k children
            assert not terminal(n) and len(kids[n.id]) == n.allocation
    # N particles alive after each round: every level's open nodes share out exactly the budget left
    for d in range(1, max(n.depth for n in nodes)):
        level = [n for n in nodes if n.depth == d]
        finished_above = sum(1 for n in nodes if 1 <= n.depth <= d and terminal(n))
        assert sum(n.allocation for n in level if not terminal(n)) == budget - finished_above
    terminal_leaves = [n.id for n in nodes[1:] if n.id not in kids and terminal(n)]
    assert len(terminal_leaves) == budget  # == the candidates (check_tree_basics)


@settings(max_examples=60, derandomize=True, deadline=None)
@given(
    budget=st.integers(1, 10),
    n_problems=st.integers(1, 3),
    seed=st.integers(0, 10**6),
    p_final=st.floats(0, 0.6),
    p_eos=st.floats(0, 0.2),
    p_length=st.floats(0, 0.3),
    max_depth=st.integers(1, 6),
    max_tokens=st.integers(4, 40),
    temperature=st.sampled_from([0.2, 1.0, 5.0]),
    resampling=st.sampled_from(["multinomial", "systematic"]),
    reward=st.sampled_from(["last", "min", "prod"]),
)
def test_random_searches_keep_n_particles(
    budget, n_problems, seed, p_final, p_eos, p_length, max_depth, max_tokens, temperature, resampling, reward
):
    gen = FakeGenerator(p_final=p_final, p_eos=p_eos, p_length=p_length, max_len=12)
    prm = FakePRM(seed=seed % 11)
    ctx = make_ctx(gen, prm, seed=seed, max_depth=max_depth, max_tokens=max_tokens, max_step_tokens=8)
    strat = ParticleFiltering(temperature=temperature, resampling=resampling, reward=reward)
    results = strat.search(problems(n_problems), budget, ctx)
    for res in results:
        _check_particles(res, budget, ctx)
        assert res.info["budget_left"] == 0
    assert gen.calls == prm.calls == max(r.info["rounds"] for r in results) <= max_depth


def test_seeded_reproducible_and_batch_invariant():
    def run(k, seed):
        gen, prm = FakeGenerator(p_final=0.25, p_eos=0.05), FakePRM(seed=3)
        ctx = make_ctx(gen, prm, seed=seed, max_tokens=60, max_step_tokens=8, max_depth=10)
        return ParticleFiltering().search(problems(k), 8, ctx)

    dump = lambda r: [n.to_json() for n in r.nodes]  # noqa: E731
    single, again, batch = run(1, 5), run(1, 5), run(6, 5)
    assert dump(single[0]) == dump(again[0]) == dump(batch[0])
    assert dump(run(1, 6)[0]) != dump(single[0])


def _two_kinds_generator():
    """Depth 1: steps "a" (even sample index) and "b" (odd); depth 2 gives the answer."""

    script = NamedSteps(lambda req, i, depth: "The answer is 1." if depth else "ab"[i % 2])
    return FakeGenerator(script=script), FakePRM(fixed={"a": 0.9, "b": 0.1})


@pytest.mark.parametrize("temperature", [4.0, 100.0])
def test_selection_follows_the_weights_through_a_search(temperature):
    """8 particles, 4 "a" (R=0.9) and 4 "b" (R=0.1): the share of depth-2 particles descending from
    "a" averages 4 w_a over 300 seeded searches (T=4: w_a/w_b = 3, share 0.75; T=100: ~0.51)."""
    ratio = math.exp((math.log(9) - math.log(1 / 9)) / temperature)
    expected = ratio / (ratio + 1)
    shares = []
    for seed in range(300):
        gen, prm = _two_kinds_generator()
        (res,) = ParticleFiltering(temperature=temperature).search(problems(1), 8, make_ctx(gen, prm, seed=seed))
        depth2 = [n for n in res.nodes if n.depth == 2]
        assert len(depth2) == 8 and len(res.candidates) == 8
        shares.append(sum(res.nodes[n.parent].text == "a" for n in depth2) / 8)
    mean = sum(shares) / len(shares)
    se = math.sqrt(expected * (1 - expected) / 8 / len(shares))
    assert abs(mean - expected) < 4 * se, (mean, expected)
