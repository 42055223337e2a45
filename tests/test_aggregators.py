"""Aggregators and step-score reductions: invalid answers never win, truncated ones vote only when asked."""

from __future__ import annotations

import pytest

from rebase.types import Candidate
from strategies.aggregators import aggregate, reduce_scores


def c(ans, scores, truncated=False):
    return Candidate(steps=["s"] * len(scores), answer=ans, step_scores=scores, truncated=truncated, finished=not truncated)


def test_reductions():
    s = [0.5, 0.8, 0.4]
    assert reduce_scores(s, "last") == 0.4
    assert reduce_scores(s, "min") == 0.4
    assert reduce_scores(s, "prod") == pytest.approx(0.16)
    assert reduce_scores(s, "mean") == pytest.approx(1.7 / 3)


def test_majority_best_and_weighted_disagree_as_designed():
    cands = [c("1", [0.1]), c("1", [0.2]), c("2", [0.9]), c(None, [1.0]), c(None, [1.0]), c(None, [1.0])]
    assert aggregate("majority", cands) == "1"  # invalid answers, though most numerous, never win
    assert aggregate("best_of_n", cands) == "2"
    assert aggregate("weighted_majority", cands) == "2"  # 0.9 > 0.1 + 0.2


def test_truncated_vote_switch_and_ties():
    cands = [c("7", [0.9], truncated=True), c("3", [0.1])]
    assert aggregate("majority", cands) == "3"
    assert aggregate("best_of_n", cands, include_truncated=True) == "7"
    assert aggregate("majority", [c("a", [0.5]), c("b", [0.5])]) == "a"  # ties go to the first seen
    assert aggregate("majority", [c(None, [0.5])]) is None


def test_reduction_changes_the_winner():
    cands = [c("1", [0.9, 0.1]), c("2", [0.5, 0.5])]
    assert aggregate("best_of_n", cands, "last") == "2"
    assert aggregate("best_of_n", cands, "mean") == "1" or aggregate("best_of_n", cands, "mean") == "2"
    assert aggregate("best_of_n", cands, "min") == "2"
    assert aggregate("best_of_n", [c("1", [0.9, 0.9]), c("2", [0.95, 0.5])], "prod") == "1"
