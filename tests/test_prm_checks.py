"""Every strategy enforces the PRM protocol the same way (reward_models.base.score_checked).

A PRM adapter that returns one score too few, a NaN score, or fewer results than paths must stop
the search with a PRMError naming the path (problem and sample, or problem and node): sampling
strategies used to zip whatever came back, so a short list silently dropped scores.

    OMP_NUM_THREADS=1 .venv/bin/pytest -q tests/test_prm_checks.py
"""

from __future__ import annotations

import pytest
from fakes import FakeGenerator, FakePRM, make_ctx, problems

from rebase.errors import PRMError
from rebase.registry import STRATEGIES

SCORED = ["best_of_n", "weighted_majority", "rebase", "mcts"]
WHY = {
    "short": r"gave \d+ scores for \d+ steps",
    "nan": "non-finite score",
    "drop": r"returned \d+ results for \d+ paths",
}


@pytest.mark.parametrize("broken", list(WHY))
@pytest.mark.parametrize("strategy", SCORED)
def test_broken_prm_results_raise_naming_the_path(strategy, broken):
    prm = FakePRM(break_first=broken)
    ctx = make_ctx(FakeGenerator(p_final=0.5), prm)
    with pytest.raises(PRMError, match=WHY[broken]) as err:
        STRATEGIES.get(strategy)().search(problems(2), 4, ctx)
    assert "problem p0" in str(err.value)  # the first path of the round is named
    assert prm.calls == 1


@pytest.mark.parametrize("strategy", SCORED)
def test_sound_prm_results_pass(strategy):
    res = STRATEGIES.get(strategy)().search(problems(2), 4, make_ctx(FakeGenerator(p_final=0.5), FakePRM()))
    assert all(
        c.step_scores is not None and len(c.step_scores) == len(c.steps) for r in res for c in r.candidates if c.steps
    )
