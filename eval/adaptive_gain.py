"""Adaptive budgets against fixed-N voting, from the records alone (part of compute_optimal.json).

Why: the point of stopping early is the same accuracy for fewer FLOPs; this measures how many.

How: `adaptive_vs_fixed(curves, records, "total")` with curves from eval.curves.accuracy_curves.
An adaptive strategy's records name the fixed-N strategy they stop early (`adapts`, written by
strategies/adaptive.py); each (dataset, model, adaptive strategy, aggregator) is compared with that
strategy's points of the same model and aggregator:
- fixed best: the fixed strategy's most accurate point (ties: the cheaper), accuracy A*, cost C*;
- `reaches_fixed_best`: whether some adaptive point has accuracy >= A*; if so `flops_ratio` =
  C* / the cost of the cheapest such point (how many times fewer FLOPs adaptive needs);
- `ratio_at_adaptive_best`: the adaptive curve's most accurate point (accuracy A, cost C) against
  the cheapest fixed point with accuracy >= A: that point's cost / C (null when no fixed point
  reaches A). Both use measured points only, no interpolation.
- per adaptive point: `mean_samples` (samples used per problem), and against fixed N = that
  maximum: `fixed_accuracy` and `fixed_flops_ratio` (fixed N's FLOPs / adaptive's).
"""

from __future__ import annotations

import pandas as pd

KEY = ["dataset", "model", "strategy", "aggregator"]


def _best(points: pd.DataFrame, col: str) -> pd.Series:
    return points.sort_values(["accuracy", col], ascending=[False, True], kind="stable").iloc[0]


def _cheapest_reaching(points: pd.DataFrame, col: str, target: float) -> pd.Series | None:
    ok = points[points["accuracy"] >= target - 1e-12]
    return None if ok.empty else ok.sort_values([col, "accuracy"], ascending=[True, False], kind="stable").iloc[0]


def adaptive_vs_fixed(curves: pd.DataFrame, records: pd.DataFrame, view: str) -> list[dict]:
    if "adapts" not in records or records["adapts"].isna().all():
        return []
    col = f"flops_{view}"
    adaptive = records[records["adapts"].notna()]
    out = []
    for key, g in adaptive.groupby(KEY, sort=True):
        ds, model, strategy, agg = key
        fixed_name = str(g["adapts"].iloc[0])
        mine = curves[(curves[KEY] == pd.Series(dict(zip(KEY, key)))).all(axis=1)].sort_values("budget")
        fixed = curves[
            (curves["dataset"] == ds)
            & (curves["model"] == model)
            & (curves["strategy"] == fixed_name)
            & (curves["aggregator"] == agg)
        ]
        used = g.groupby("budget")["samples_used"].mean() if "samples_used" in g else pd.Series(dtype=float)
        row = {
            "dataset": ds,
            "model": model,
            "strategy": strategy,
            "aggregator": agg,
            "fixed_strategy": fixed_name,
            "points": [
                {
                    "budget": int(r["budget"]),
                    "accuracy": r["accuracy"],
                    "flops": r[col],
                    "mean_samples": float(used.get(r["budget"], float("nan"))),
                }
                for _, r in mine.iterrows()
            ],
        }
        if fixed.empty or mine.empty:
            out.append({**row, "note": f"no {fixed_name} points with aggregator {agg} for {model}"})
            continue
        row["fixed_points"] = [
            {"budget": int(r["budget"]), "accuracy": r["accuracy"], "flops": r[col]}
            for _, r in fixed.sort_values("budget").iterrows()
        ]
        by_n = {int(r["budget"]): r for _, r in fixed.iterrows()}
        for pt in row["points"]:  # the same maximum run as a fixed N: what stopping saved and cost
            f = by_n.get(pt["budget"])
            pt["fixed_accuracy"] = None if f is None else f["accuracy"]
            pt["fixed_flops_ratio"] = None if f is None else float(f[col] / pt["flops"])
        fb = _best(fixed, col)
        reach = _cheapest_reaching(mine, col, fb["accuracy"])
        ab = _best(mine, col)
        back = _cheapest_reaching(fixed, col, ab["accuracy"])
        row.update(
            fixed_best={"budget": int(fb["budget"]), "accuracy": fb["accuracy"], "flops": fb[col]},
            reaches_fixed_best=reach is not None,
            adaptive_at_fixed_best=None
            if reach is None
            else {"budget": int(reach["budget"]), "accuracy": reach["accuracy"], "flops": reach[col]},
            flops_ratio=None if reach is None else float(fb[col] / reach[col]),
            adaptive_best={"budget": int(ab["budget"]), "accuracy": ab["accuracy"], "flops": ab[col]},
            ratio_at_adaptive_best=None if back is None else float(back[col] / ab[col]),
        )
        out.append(row)
    return out
