"""Sampling temperature away from 0 and 1, where dividing and multiplying the logits by T differ.

The transformers backend samples argmax(logits / T + Gumbel noise) (rebase/backends/hf_sampling.py),
an exact draw from softmax(logits / T). At T = 0.5 and T = 2 the empirical token frequencies of
20,000 draws must match softmax(logits / T) and be far from softmax(logits x T); and the strategies
hand the configured temperature to the backend unchanged.

    OMP_NUM_THREADS=1 .venv/bin/pytest -q tests/test_sampling_temperature.py
"""

from __future__ import annotations

import pytest
import torch
from fakes import FakeGenerator, FakePRM, make_ctx, problems

from rebase.backends.hf_sampling import sample_next
from rebase.registry import STRATEGIES

LOGITS = torch.tensor([2.0, 1.0, 0.0, -1.0, -3.0])
DRAWS = 20_000


def frequencies(temperature: float, top_p: float = 1.0) -> torch.Tensor:
    rows = LOGITS.repeat(DRAWS, 1)
    tokens = sample_next(
        rows,
        torch.full((DRAWS,), temperature),
        torch.full((DRAWS,), top_p),
        torch.full((DRAWS,), 1234, dtype=torch.long),
        torch.arange(DRAWS),
        step=3,
    )
    return torch.bincount(tokens, minlength=len(LOGITS)).double() / DRAWS


@pytest.mark.parametrize("temperature", [0.5, 2.0])
def test_samples_follow_softmax_of_logits_over_t(temperature):
    got = frequencies(temperature)
    want = torch.softmax(LOGITS.double() / temperature, dim=-1)
    wrong = torch.softmax(LOGITS.double() * temperature, dim=-1)
    assert (got - want).abs().max() < 0.015, (got, want)  # ~4 standard errors at 20k draws
    assert (got - wrong).abs().max() > 0.1, (got, wrong)  # multiplying by T would be seen


def test_temperature_zero_is_argmax_and_lower_t_is_sharper():
    assert torch.equal(frequencies(0.0), torch.tensor([1.0, 0, 0, 0, 0], dtype=torch.double))
    assert frequencies(0.5)[0] > frequencies(1.0)[0] > frequencies(2.0)[0]


@pytest.mark.parametrize("strategy", ["majority", "rebase"])
def test_strategies_pass_the_configured_temperature(strategy):
    gen = FakeGenerator(p_final=0.5)
    ctx = make_ctx(gen, FakePRM(), temperature=0.7)
    STRATEGIES.get(strategy)().search(problems(2), 4, ctx)
    temps = {r.temperature for call in gen.requests for r in call}
    assert temps == {0.7}
