"""Aggregators: pick one final answer from a strategy's candidates.

- `majority`: most frequent answer.
- `best_of_n`: the answer of the candidate with the highest reduced PRM score.
- `weighted_majority`: the answer whose candidates' reduced PRM scores sum highest (the paper's
  default for REBASE and sampling).

Step scores reduce to one number per candidate by `last | min | prod | mean`. Invalid candidates
(answer None) never win; truncated candidates vote only when `include_truncated` is set. Ties go to
the answer seen first, so results are deterministic.
"""

from __future__ import annotations

import math
from typing import Callable, Optional, Sequence

from rebase.registry import AGGREGATORS
from rebase.types import Candidate

REDUCTIONS: dict[str, Callable[[Sequence[float]], float]] = {
    "last": lambda s: s[-1],
    "min": min,
    "prod": math.prod,
    "mean": lambda s: sum(s) / len(s),
}


def reduce_scores(scores: Optional[Sequence[float]], reduction: str) -> float:
    if reduction not in REDUCTIONS:
        raise ValueError(f"unknown reduction '{reduction}'; available: {', '.join(REDUCTIONS)}")
    if not scores:
        return 0.0
    return float(REDUCTIONS[reduction](scores))


def voters(cands: Sequence[Candidate], include_truncated: bool = False) -> list[Candidate]:
    return [c for c in cands if c.answer is not None and (include_truncated or not c.truncated)]


def _argmax_first(totals: dict[str, float]) -> Optional[str]:
    best, best_v = None, -math.inf
    for a, v in totals.items():  # dicts keep first-seen order: ties go to the earlier answer
        if v > best_v:
            best, best_v = a, v
    return best


def vote_totals(cands: Sequence[Candidate], weighted: bool, reduction: str = "last",
                include_truncated: bool = False) -> dict[str, float]:
    """The vote mass of each answer, in first-seen order: one per voter, or (weighted) the sum of
    the voters' reduced PRM scores. The voting aggregators and the adaptive stopping rule
    (strategies/stopping.py) read the same totals."""
    totals: dict[str, float] = {}
    for c in voters(cands, include_truncated):
        w = reduce_scores(c.step_scores, reduction) if weighted else 1.0
        totals[c.answer] = totals.get(c.answer, 0.0) + w  # type: ignore[index]
    return totals


@AGGREGATORS.register("majority")
def majority(cands: Sequence[Candidate], reduction: str = "last", include_truncated: bool = False) -> Optional[str]:
    """The most frequent answer; ties go to the answer seen first."""
    return _argmax_first(vote_totals(cands, False, reduction, include_truncated))


@AGGREGATORS.register("best_of_n")
def best_of_n(cands: Sequence[Candidate], reduction: str = "last", include_truncated: bool = False) -> Optional[str]:
    """The answer of the candidate with the highest reduced PRM score."""
    best, best_v = None, -math.inf
    for c in voters(cands, include_truncated):
        v = reduce_scores(c.step_scores, reduction)
        if v > best_v:
            best, best_v = c.answer, v
    return best


@AGGREGATORS.register("weighted_majority")
def weighted_majority(cands: Sequence[Candidate], reduction: str = "last", include_truncated: bool = False) -> Optional[str]:
    """The answer with the largest sum of reduced PRM scores over its candidates."""
    return _argmax_first(vote_totals(cands, True, reduction, include_truncated))


def aggregate(name: str, cands: Sequence[Candidate], reduction: str = "last", include_truncated: bool = False) -> Optional[str]:
    return AGGREGATORS.get(name)(cands, reduction=reduction, include_truncated=include_truncated)
