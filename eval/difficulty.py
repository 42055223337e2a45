"""Difficulty levels for the compute-optimal tables: the dataset's own, or bins estimated from the
sweep's results.

Why: per-level choices need levels. MATH and arith carry them; GSM8K and AIME do not, so (as Snell
et al. 2024 do) problems are binned by how often the sweep itself solves them.

How: `assign_levels(records, problem_ids)` -> (level per problem, the method in words).

Estimate: each problem's solve rate = mean `correct` over its budget-1 records (greedy and single
samples of every model and strategy that ran at budget 1; with sample reuse a budget-1 record is
already the mean over the pool, i.e. pass@1), or over all its records when the sweep has no
budget-1 point. Problems are cut into (up to) five equal-count bins by that rate, ties kept
together; bin 1 is the most often solved. The rate uses the gold answers, so these bins are an
oracle's: choices made per bin are an upper bound on a deployable difficulty predictor's.
"""

from __future__ import annotations

import pandas as pd

N_BINS = 5


def assign_levels(records: pd.DataFrame, problem_ids: pd.Index) -> tuple[pd.Series, str]:
    given = records.dropna(subset=["level"]).groupby("problem_id")["level"].first()
    if problem_ids.isin(given.index).all():
        lv = given.reindex(problem_ids)
        num = pd.to_numeric(lv, errors="coerce")
        return (num.astype(int) if num.notna().all() else lv.astype(str)), "dataset levels"
    single = records[records["budget"] == 1]
    base, what = (single, "budget-1 records (greedy / pass@1)") if not single.empty else (records, "all records")
    rate = base.groupby("problem_id")["correct"].mean().reindex(problem_ids).fillna(0.0)
    # a tie group takes the bin of its first member, so equal rates never straddle a bin edge
    first = (-rate).rank(method="min")
    bins = ((first - 1) * N_BINS // len(rate)).astype(int)
    levels = pd.Series(bins.rank(method="dense").astype(int), index=problem_ids)
    return levels, f"estimated: {levels.nunique()} equal-count bins of the solve rate over {what}"
