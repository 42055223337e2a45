"""Accuracy-versus-budget tables from records: curves.csv and levels.csv of `rebase report`.

Why: every later step (Pareto frontier, scaling fits, plots) works on one row per
(dataset, model, strategy, aggregator, budget) point, so this is the only place that averages
records.

How: `accuracy_curves(df)` and `level_accuracy(df)` take the DataFrame of eval.report.load_records.

Definitions:
- accuracy = mean over problems of (mean over that problem's seeds of `correct`); with every seed
  present for every problem this is the plain mean over records.
- ci_low / ci_high: a 95% percentile bootstrap over PROBLEMS (a problem's seeds are resampled
  together, since they share the problem's difficulty), 1000 resamples, seeded from the point's
  key so the numbers are reproducible and independent of row order.
- flops_* / tokens: the mean per record (one problem, one seed).
"""

from __future__ import annotations

import zlib

import numpy as np
import pandas as pd

POINT = ["dataset", "model", "strategy", "aggregator", "budget"]
N_BOOT = 1000


def bootstrap_ci(per_problem: np.ndarray, key: str, n_boot: int = N_BOOT, level: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap CI of the mean of `per_problem` (one value per problem)."""
    n = len(per_problem)
    if n == 0:
        return float("nan"), float("nan")
    if n == 1:
        v = float(per_problem[0])
        return v, v
    rng = np.random.default_rng(zlib.crc32(key.encode("utf-8")))
    idx = rng.integers(0, n, size=(n_boot, n))
    means = per_problem[idx].mean(axis=1)
    tail = (1.0 - level) / 2.0 * 100.0
    lo, hi = np.percentile(means, [tail, 100.0 - tail])
    return float(lo), float(hi)


def accuracy_curves(df: pd.DataFrame) -> pd.DataFrame:
    """One row per point: accuracy with a bootstrap CI, problem/seed counts, mean cost, failures."""
    rows = []
    for key, g in df.groupby(POINT, sort=True):
        per_problem = g.groupby("problem_id")["correct"].mean().to_numpy(dtype=float)
        lo, hi = bootstrap_ci(per_problem, "|".join(map(str, key)))
        params = g["model_params"].dropna()
        rows.append(
            {
                **dict(zip(POINT, key)),
                "accuracy": float(per_problem.mean()),
                "ci_low": lo,
                "ci_high": hi,
                "n_problems": int(len(per_problem)),
                "n_seeds": int(g["seed"].nunique()),
                "n_records": int(len(g)),
                "flops_paper": float(g["flops_paper"].mean()),
                "flops_policy": float(g["flops_policy"].mean()),
                "flops_total": float(g["flops_total"].mean()),
                "generated_tokens": float(g["policy_generated_tokens"].mean()),
                "prm_tokens": float(g["prm_tokens"].mean()),
                "model_params": float(params.iloc[0]) if len(params) else float("nan"),
                "n_failed": int(g["error"].notna().sum()),
            }
        )
    out = pd.DataFrame(rows)
    out["budget"] = out["budget"].astype(df["budget"].dtype)
    return out


def level_accuracy(df: pd.DataFrame) -> pd.DataFrame:
    """Accuracy per point and difficulty level; empty when no record carries a level."""
    has = df[df["level"].notna()]
    if has.empty:
        return pd.DataFrame()
    # Numeric levels (1..5) sort as numbers; named ones ("easy", "hard") as text.
    num = pd.to_numeric(has["level"], errors="coerce")
    has = has.assign(level=num if num.notna().all() else has["level"].astype(str))
    rows = []
    for key, g in has.groupby(POINT + ["level"], sort=True):
        per_problem = g.groupby("problem_id")["correct"].mean().to_numpy(dtype=float)
        rows.append(
            {
                **dict(zip(POINT + ["level"], key)),
                "accuracy": float(per_problem.mean()),
                "n_problems": int(len(per_problem)),
                "n_records": int(len(g)),
                "flops_paper": float(g["flops_paper"].mean()),
                "flops_policy": float(g["flops_policy"].mean()),
                "flops_total": float(g["flops_total"].mean()),
            }
        )
    return pd.DataFrame(rows)
