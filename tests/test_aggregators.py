"""Aggregators and step-score reductions: invalid answers never win, truncated ones vote only when asked."""

from __future__ import annotations

import pytest

from rebase.types import Candidate
from strategies.aggregators import aggregate, reduce_scores, vote_totals


def c(ans, scores, truncated=False):
    return Candidate(
        steps=["s"] * len(scores), answer=ans, step_scores=scores, truncated=truncated, finished=not truncated
    )


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
    assert aggregate("best_of_n", cands, "mean") == "1"  # equal means (0.5): the first seen wins the tie
    assert aggregate("best_of_n", list(reversed(cands)), "mean") == "2"
    assert aggregate("best_of_n", cands, "min") == "2"
    assert aggregate("best_of_n", [c("1", [0.9, 0.9]), c("2", [0.95, 0.5])], "prod") == "1"


# answer spellings as they occur in MATH-500 gold answers and model outputs, and GSM8K number formats
MATH_HALF = ["\\dfrac{1}{2}", "\\frac{1}{2}", "\\frac12", "0.5"]


def test_math_equivalent_spellings_vote_together():
    cands = [c(a, [0.3]) for a in MATH_HALF] + [c("\\frac{1}{3}", [0.9]), c("\\frac{1}{3}", [0.9])]
    # raw strings: 1/3 has two votes, each spelling of 1/2 one; grouped: 1/2 has four
    assert aggregate("majority", cands) == "\\frac{1}{3}"
    assert aggregate("majority", cands, dataset="math500") == "\\dfrac{1}{2}"
    assert vote_totals(cands, True, dataset="math500") == pytest.approx({"0.5": 1.2, "1/3": 1.8})
    assert aggregate("weighted_majority", cands, dataset="math500") == "\\frac{1}{3}"


def test_winner_is_the_most_frequent_spelling_in_the_winning_group():
    cands = [
        c("\\frac43", [0.5]),
        c("\\frac{4}{3}", [0.5]),
        c("\\dfrac{4}{3}", [0.5]),
        c("\\frac{4}{3}", [0.5]),
        c("\\frac{3}{2}", [0.6]),
        c("1.5", [0.6]),
    ]
    assert aggregate("majority", cands, dataset="math500") == "\\frac{4}{3}"
    assert aggregate("weighted_majority", cands, dataset="math500") == "\\frac{4}{3}"  # 2.0 vs 1.2
    assert aggregate("best_of_n", cands, dataset="math500") == "\\frac{3}{2}"  # first of the 0.6 group
    tuple_ = [c("\\left( 3, \\frac{\\pi}{2} \\right)", [0.2]), c("(3,\\frac{\\pi}{2})", [0.2]), c("(3, \\pi)", [0.3])]
    assert aggregate("weighted_majority", tuple_, dataset="math500") == "\\left( 3, \\frac{\\pi}{2} \\right)"


def test_gsm8k_number_formats_vote_together():
    cands = [
        c("1,000", [0.4]),
        c("1000", [0.4]),
        c("1000.00", [0.4]),
        c("$1,000", [0.4]),
        c("999", [0.5]),
        c("999", [0.5]),
        c("998", [0.9]),
    ]
    assert aggregate("majority", cands) == "999"  # raw strings split the four 1000s
    assert aggregate("majority", cands, dataset="gsm8k") == "1,000"
    assert aggregate("weighted_majority", cands, dataset="gsm8k") == "1,000"  # 1.6 > 1.0 > 0.9
    assert aggregate("best_of_n", cands, dataset="gsm8k") == "998"


def test_weighted_majority_sums_scores_not_max():
    """Three middling votes for one answer beat one strong vote for another only by their sum."""
    cands = [c("5", [0.4]), c("5", [0.4]), c("5", [0.4]), c("6", [0.9])]
    assert aggregate("weighted_majority", cands, dataset="gsm8k") == "5"  # 1.2 > 0.9 (a max gives 6)
    assert aggregate("best_of_n", cands, dataset="gsm8k") == "6"


def test_truncated_candidates_stay_out_of_the_weighted_vote():
    cands = [c("8", [0.9], truncated=True), c("8", [0.9], truncated=True), c("4", [0.5])]
    assert aggregate("weighted_majority", cands, dataset="gsm8k") == "4"
    assert aggregate("weighted_majority", cands, include_truncated=True, dataset="gsm8k") == "8"
    assert aggregate("majority", cands, dataset="gsm8k") == "4"


def test_sample_reuse_pool_votes_on_equivalent_answers():
    """eval/pool.py derives smaller budgets from one pool: its votes and modal answer group alike."""
    from collections import Counter

    from fakes import FakeGenerator

    from eval.pool import derive, modal_answer
    from rebase.flops import Ledger
    from rebase.types import SearchResult

    cands = [c("1,000", [0.4]), c("1000", [0.4]), c("1000.0", [0.4]), c("7", [0.5]), c("7", [0.5])]
    samples = [{"prompt_tokens": 5, "cached_tokens": 0, "generated_tokens": 3, "prm_tokens": 0, "prm_head_rows": 0}] * 5
    res = SearchResult("p", cands, Ledger(), nodes=[], info={"samples": samples})
    got = derive(
        res, 5, "majority", "last", False, lambda a: a == "1000", FakeGenerator(), None, (0, "p"), dataset="gsm8k"
    )
    assert got["answer"] == "1,000" and got["correct"] == 0.0  # the grade sees the winning spelling
    raw = derive(res, 5, "majority", "last", False, lambda a: a == "7", FakeGenerator(), None, (0, "p"))
    assert raw["answer"] == "7"
    assert modal_answer(Counter({"1,000": 2, "7": 3, "1000": 2}), "gsm8k") == "1,000"
    assert modal_answer(Counter({None: 3, "7": 2}), "gsm8k") is None


def test_invalid_answers_vote_only_when_asked():
    """The released code's rule (docs/FIDELITY.md): "[invalid]" is a class of its own and can win."""
    cands = [c(None, [0.9]), c(None, [0.8]), c("3", [0.5])]
    assert aggregate("majority", cands) == "3" and aggregate("weighted_majority", cands) == "3"
    assert aggregate("majority", cands, include_invalid=True) is None
    assert aggregate("weighted_majority", cands, include_invalid=True) is None  # 1.7 > 0.5
    assert aggregate("best_of_n", cands, include_invalid=True) is None
    assert aggregate("majority", cands + [c("3", [0.1]), c("3.0", [0.1])], include_invalid=True, dataset="gsm8k") == "3"
