"""The accuracy-versus-FLOPs Pareto frontier over every point of a run (pareto.csv).

Why: the question the paper asks is "for this much compute, which model and which strategy?";
the frontier answers it across all models x strategies x aggregators x budgets at once.

How: `frontier(curves, "total")` with curves from eval.curves.accuracy_curves; or
`non_dominated(flops, acc)` for a boolean mask on plain arrays.

Definition: a point is dominated when another point has <= FLOPs and >= accuracy, with at least
one of the two strict. Two identical points do not dominate each other, so both stay. The frontier
is computed separately per dataset (accuracies on different datasets are not comparable) and
sorted by FLOPs. Points without a FLOP figure in the chosen view are left out.
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def non_dominated(flops: np.ndarray, acc: np.ndarray) -> np.ndarray:
    """Boolean mask of the non-dominated points (pairwise and exact; runs have < ~10^4 points)."""
    f = np.asarray(flops, dtype=float)
    a = np.asarray(acc, dtype=float)
    # dom[i, j]: point j dominates point i.
    no_worse = (f[None, :] <= f[:, None]) & (a[None, :] >= a[:, None])
    strictly = (f[None, :] < f[:, None]) | (a[None, :] > a[:, None])
    return ~(no_worse & strictly).any(axis=1)


def frontier(curves: pd.DataFrame, view: str) -> pd.DataFrame:
    """The frontier rows of `curves` in FLOP view `view`, per dataset, sorted by FLOPs."""
    col = f"flops_{view}"
    parts = []
    for _, g in curves[curves[col].notna()].groupby("dataset", sort=True):
        mask = non_dominated(g[col].to_numpy(), g["accuracy"].to_numpy())
        parts.append(g[mask].sort_values([col, "accuracy"], kind="stable"))
    keep = [
        "dataset",
        "model",
        "strategy",
        "aggregator",
        "budget",
        "accuracy",
        "ci_low",
        "ci_high",
        col,
        "model_params",
        "n_problems",
    ]
    if not parts:
        return pd.DataFrame(columns=keep)
    return pd.concat(parts)[keep].reset_index(drop=True)
