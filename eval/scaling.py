"""Scaling-law fits of a run (scaling_fit.json): accuracy against compute per curve, the
compute-optimal model size per budget, per-level accuracy and the list of failures.

Why: the paper's claims are about shapes (accuracy saturates with compute; the optimal model grows
with the budget as log10 C = 1.19 log10 N + 2.03); this module states those shapes as numbers.

How: `scaling_report(curves, frontier, levels, records, view)` from eval.report;
`fit_curve(flops, acc)` on plain arrays.

(a) Per (dataset, model, strategy, aggregator), over its budgets:
    saturating  acc(C) = a - b * C^(-c)   (C = mean FLOPs per problem in the chosen view)
    fitted with scipy.optimize.curve_fit in x = log10 C as acc = a - b0 * 10^(-c (x - x0)),
    x0 = the smallest observed log10 C, b0 = b * C0^(-c) (the gap to the ceiling at the cheapest
    point); bounds a in [0, 1], b0 in [-1.5, 1.5] (negative: a curve that falls with compute),
    c in [1e-3, 5]; three starts for c, the lowest squared error wins. With < 4 distinct compute
    values, or when no start converges, the fallback is linear: acc = m * log10 C + k.
    Both report R^2 (null when accuracy is constant) and RMSE; a saturating fit also carries the
    linear fit's numbers under "linear" for comparison.
(b) Compute-optimal model size. For a budget B, the optimal model is the model of the most
    accurate point (any strategy, aggregator, budget) whose FLOPs are <= B; ties go to the
    smaller model. Evaluated on 24 log-spaced budgets over the observed FLOP range. For the fit,
    each model N gets C*(N) = the smallest FLOPs at which N is the optimal choice, which is exactly
    the FLOPs of N's cheapest point on the Pareto frontier (models never on the frontier are never
    optimal and get no C*). log10 C* = a log10 N + b is fitted by least squares when >= 2 distinct
    model sizes have a C*. Note: the smallest model's C* is the cheapest point of the whole sweep,
    i.e. it is set by the sweep's range, not by the model.
(c) Accuracy per level (the rows of levels.csv), when records carry levels.
(d) Failures: every record with a non-null error.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd
from scipy.optimize import OptimizeWarning, curve_fit

SATURATING = "acc(C) = a - b * C^(-c)"
LINEAR = "acc(C) = m * log10(C) + k"
N_GRID = 24


def _quality(y: np.ndarray, pred: np.ndarray) -> dict:
    sse = float(np.sum((y - pred) ** 2))
    sst = float(np.sum((y - y.mean()) ** 2))
    return {"r2": (1.0 - sse / sst) if sst > 0 else None, "rmse": math.sqrt(sse / len(y))}


def fit_linear(x: np.ndarray, y: np.ndarray) -> dict:
    """acc = m * x + k with x = log10 C (a constant when there is a single compute value)."""
    if len(np.unique(x)) < 2:
        m, k = 0.0, float(y.mean())
    else:
        m, k = (float(v) for v in np.polyfit(x, y, 1))
    return {"form": "linear", "equation": LINEAR, "m": m, "k": k, **_quality(y, m * x + k)}


def fit_saturating(x: np.ndarray, y: np.ndarray) -> dict | None:
    """The saturating form in log space; None when no start converges."""
    x0 = float(x.min())

    def model(xx, a, b0, c):
        return a - b0 * np.power(10.0, -c * (xx - x0))

    best = None
    for c_start in (0.1, 0.5, 2.0):
        p0 = (min(1.0, float(y.max()) + 0.01), float(np.clip(y.max() - y.min(), 0.01, 1.0)), c_start)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", OptimizeWarning)
                popt, _ = curve_fit(model, x, y, p0=p0, bounds=([0.0, -1.5, 1e-3], [1.0, 1.5, 5.0]), maxfev=20000)
        except (RuntimeError, ValueError):
            continue
        sse = float(np.sum((y - model(x, *popt)) ** 2))
        if np.all(np.isfinite(popt)) and (best is None or sse < best[0]):
            best = (sse, popt)
    if best is None:
        return None
    a, b0, c = (float(v) for v in best[1])
    return {
        "form": "saturating",
        "equation": SATURATING,
        "a": a,
        "b": b0 * 10.0 ** (c * x0),
        "c": c,
        "b0": b0,
        "log10_C0": x0,
        **_quality(y, model(x, a, b0, c)),
    }


def fit_curve(flops, acc) -> dict:
    """Saturating fit of accuracy against compute, linear in log10 C as the fallback."""
    f = np.asarray(flops, dtype=float)
    y = np.asarray(acc, dtype=float)
    ok = np.isfinite(f) & (f > 0) & np.isfinite(y)
    x, y = np.log10(f[ok]), y[ok]
    if len(x) == 0:
        return {"form": "none", "n_points": 0}
    fit = fit_saturating(x, y) if len(np.unique(x)) >= 4 else None
    if fit is not None:
        # Kept for comparison: within the sweep's range a straight line in log10 C can fit as well.
        lin = fit_linear(x, y)
        fit["linear"] = {k: lin[k] for k in ("m", "k", "r2", "rmse")}
    fit = fit or fit_linear(x, y)
    fit["n_points"] = int(len(x))
    return fit


def curve_fits(curves: pd.DataFrame, view: str) -> list[dict]:
    col = f"flops_{view}"
    out = []
    for key, g in curves.groupby(["dataset", "model", "strategy", "aggregator"], sort=True):
        g = g.sort_values(col)
        out.append(
            {
                **dict(zip(["dataset", "model", "strategy", "aggregator"], key)),
                "model_params": g["model_params"].iloc[0],
                "budgets": g["budget"].tolist(),
                **fit_curve(g[col], g["accuracy"]),
            }
        )
    return out


def compute_optimal(curves: pd.DataFrame, front: pd.DataFrame, view: str) -> list[dict]:
    """Per dataset: the optimal model on a budget grid, each model's C*, and the log-log fit."""
    col = f"flops_{view}"
    out = []
    for ds, g in curves[curves[col] > 0].groupby("dataset", sort=True):
        fr = front[front["dataset"] == ds]
        grid = np.logspace(np.log10(g[col].min()), np.log10(g[col].max()), N_GRID)
        rows = []
        for budget in grid:
            within = fr[fr[col] <= budget * (1 + 1e-12)]
            if within.empty:
                continue
            top = within[within["accuracy"] == within["accuracy"].max()]
            pick = top.sort_values(["model_params", col], kind="stable", na_position="last").iloc[0]
            rows.append(
                {
                    "flops_budget": float(budget),
                    "model": pick["model"],
                    "model_params": pick["model_params"],
                    "strategy": pick["strategy"],
                    "aggregator": pick["aggregator"],
                    "budget": pick["budget"],
                    "accuracy": float(pick["accuracy"]),
                    "flops": float(pick[col]),
                }
            )
        entries = (
            fr.sort_values(col, kind="stable")
            .groupby("model", sort=False)
            .head(1)[["model", "model_params", col]]
            .rename(columns={col: "c_star"})
        )
        entries = entries[entries["model_params"] > 0]
        fit, note = None, ""
        if entries["model_params"].nunique() >= 2:
            lx, ly = np.log10(entries["model_params"].to_numpy()), np.log10(entries["c_star"].to_numpy())
            a, b = (float(v) for v in np.polyfit(lx, ly, 1))
            fit = {
                "equation": "log10 C = a * log10 N + b",
                "a": a,
                "b": b,
                "n_models": int(len(entries)),
                **_quality(ly, a * lx + b),
                "paper": {"a": 1.19, "b": 2.03},
            }
        else:
            note = f"no fit: fewer than 2 model sizes with model_params are ever compute-optimal ({len(entries)} found)"
        # The frontier is where the optimal choice changes, exactly (the grid only samples it).
        steps = fr[["model", "model_params", col]].rename(columns={col: "flops"})
        out.append(
            {
                "dataset": ds,
                "grid": rows,
                "entry_points": entries.to_dict("records"),
                "steps": steps.to_dict("records"),
                "flops_max": float(g[col].max()),
                "fit": fit,
                "note": note,
            }
        )
    return out


def failures(records: pd.DataFrame) -> list[dict]:
    cols = ["model", "dataset", "strategy", "aggregator", "budget", "seed", "problem_id", "error"]
    bad = records[records["error"].notna()]
    return bad.sort_values(cols[:-1], kind="stable")[cols].to_dict("records")


def clean(obj):
    """JSON-safe: numpy scalars to Python, NaN/inf to null."""
    if isinstance(obj, dict):
        return {str(k): clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [clean(v) for v in obj]
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def scaling_report(
    curves: pd.DataFrame, front: pd.DataFrame, levels: pd.DataFrame, records: pd.DataFrame, view: str
) -> dict:
    return clean(
        {
            "flops_view": view,
            "curve_fits": curve_fits(curves, view),
            "compute_optimal": compute_optimal(curves, front, view),
            "levels": levels.to_dict("records") if not levels.empty else [],
            "failures": failures(records),
        }
    )
