"""Aggregators: pick one final answer from a strategy's candidates.

- `majority`: most frequent answer.
- `best_of_n`: the answer of the candidate with the highest reduced PRM score.
- `weighted_majority`: the answer whose candidates' reduced PRM scores sum highest (the paper's
  default for REBASE and sampling).

Votes are grouped by answer equivalence, the same one grading uses (rebase.tasks.grading.answer_key):
on MATH "\\dfrac{1}{2}", "\\frac12" and "0.5" are one answer, on GSM8K "1,000", "1000" and
"1000.00"; the reported answer is the most frequent spelling inside the winning group. best_of_n
takes the group of the best-scored candidate. Step scores reduce to one number per candidate by
`last | min | prod | mean`. Invalid candidates (answer None) never win; truncated candidates vote
only when `include_truncated` is set. Ties go to the group seen first, so results are deterministic.

    aggregate("weighted_majority", candidates, "last", dataset="math500")
"""

from __future__ import annotations

import functools
import math
from collections import Counter
from dataclasses import dataclass, field
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


def voters(
    cands: Sequence[Candidate], include_truncated: bool = False, include_invalid: bool = False
) -> list[Candidate]:
    return [c for c in cands if (include_invalid or c.answer is not None) and (include_truncated or not c.truncated)]


@functools.lru_cache(maxsize=65536)
def _answer_key(answer: str, dataset: str) -> str:
    from rebase.tasks.grading import answer_key

    return answer_key(answer, dataset)


def vote_key(answer: str, dataset: Optional[str]) -> str:
    """The group an answer votes in: the grading equivalence of `dataset` ("1,000" = "1000.00",
    "\\dfrac{1}{2}" = "\\frac12" = "0.5"), or the raw string when no dataset is given."""
    return answer if dataset is None else _answer_key(answer, dataset)


INVALID = "[invalid]"  # the group of answers that cannot be extracted (only with include_invalid)


@dataclass
class Group:
    """Candidates whose answers are equivalent: their vote mass, best reduced score and spellings."""

    total: float = 0.0
    best: float = -math.inf
    spellings: Counter = field(default_factory=Counter)

    @property
    def answer(self) -> Optional[str]:
        return self.spellings.most_common(1)[0][0]  # ties: the spelling seen first (a stable sort)


def groups(
    cands: Sequence[Candidate],
    weighted: bool,
    reduction: str = "last",
    include_truncated: bool = False,
    dataset: Optional[str] = None,
    include_invalid: bool = False,
) -> dict[str, Group]:
    """Voters grouped by `vote_key`, in first-seen order: each adds 1 (or, weighted, its reduced
    PRM score) to its group's total."""
    out: dict[str, Group] = {}
    for c in voters(cands, include_truncated, include_invalid):
        v = reduce_scores(c.step_scores, reduction)
        key = INVALID if c.answer is None else vote_key(c.answer, dataset)
        g = out.setdefault(key, Group())
        g.total += v if weighted else 1.0
        g.best = max(g.best, v)
        g.spellings[c.answer] += 1
    return out


def _winner(gs: dict[str, Group], value: Callable[[Group], float]) -> Optional[str]:
    best, best_v = None, -math.inf
    for g in gs.values():  # dicts keep first-seen order: ties go to the earlier group
        if value(g) > best_v:
            best, best_v = g, value(g)
    return best.answer if best is not None else None


def vote_totals(
    cands: Sequence[Candidate],
    weighted: bool,
    reduction: str = "last",
    include_truncated: bool = False,
    dataset: Optional[str] = None,
    include_invalid: bool = False,
) -> dict[str, float]:
    """The vote mass of each answer group, in first-seen order: one per voter, or (weighted) the
    sum of the voters' reduced PRM scores. The voting aggregators and the adaptive stopping rule
    (strategies/stopping.py) read the same totals."""
    return {
        k: g.total for k, g in groups(cands, weighted, reduction, include_truncated, dataset, include_invalid).items()
    }


@AGGREGATORS.register("majority")
def majority(
    cands: Sequence[Candidate],
    reduction: str = "last",
    include_truncated: bool = False,
    dataset: Optional[str] = None,
    include_invalid: bool = False,
) -> Optional[str]:
    """The most frequent answer (equivalent answers vote together); ties go to the answer seen first."""
    return _winner(groups(cands, False, reduction, include_truncated, dataset, include_invalid), lambda g: g.total)


@AGGREGATORS.register("best_of_n")
def best_of_n(
    cands: Sequence[Candidate],
    reduction: str = "last",
    include_truncated: bool = False,
    dataset: Optional[str] = None,
    include_invalid: bool = False,
) -> Optional[str]:
    """The answer of the candidate with the highest reduced PRM score."""
    return _winner(groups(cands, False, reduction, include_truncated, dataset, include_invalid), lambda g: g.best)


@AGGREGATORS.register("weighted_majority")
def weighted_majority(
    cands: Sequence[Candidate],
    reduction: str = "last",
    include_truncated: bool = False,
    dataset: Optional[str] = None,
    include_invalid: bool = False,
) -> Optional[str]:
    """The answer with the largest sum of reduced PRM scores over its (equivalent) candidates."""
    return _winner(groups(cands, True, reduction, include_truncated, dataset, include_invalid), lambda g: g.total)


def aggregate(
    name: str,
    cands: Sequence[Candidate],
    reduction: str = "last",
    include_truncated: bool = False,
    dataset: Optional[str] = None,
    include_invalid: bool = False,
) -> Optional[str]:
    """The final answer of aggregator `name`; with `dataset`, votes are grouped by that dataset's
    answer equivalence and the winner is the most frequent spelling inside the winning group."""
    kw = {"include_invalid": True} if include_invalid else {}  # a plugin aggregator may not take it
    return AGGREGATORS.get(name)(cands, reduction=reduction, include_truncated=include_truncated, dataset=dataset, **kw)


# What each aggregator needs, declared once: the sweep plans PRM scoring from this, not from names.
majority.needs_prm = False  # type: ignore[attr-defined]
best_of_n.needs_prm = True  # type: ignore[attr-defined]
weighted_majority.needs_prm = True  # type: ignore[attr-defined]


def needs_prm(aggregator: str) -> bool:
    """Whether `aggregator` reads PRM scores (a plugin aggregator that does not say is assumed to)."""
    return bool(getattr(AGGREGATORS.get(aggregator), "needs_prm", True))
