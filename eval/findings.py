"""The paper's findings, checked on a run's curves: findings.json of `rebase report`.

Why: a report is only persuasive when its claims are checked by code, not by reading plots. The
Inference Scaling Laws paper makes four claims a sweep can test; each is stated here as a rule on
curves.csv, for a given FLOP view, with the numbers that decide it:

(a) `weighted_over_majority`: weighted majority voting is at least as accurate as majority voting
    at every budget >= 8 for every model, and at least 3 points above it at budget 64 for at least
    two models.
(b) `best_of_n_monotone`: best-of-N does not fall as N grows from 4 to 64: for every model, no
    budget's accuracy is more than 0.02 below any smaller budget's.
(c) `rebase_half_flops`: REBASE reaches sampling's best accuracy (weighted majority's most
    accurate point) at no more than half of that point's FLOPs, for at least two models.
(d) `smaller_model_wins`: at some FLOP budget a smaller model with search (budget > 1) is more
    accurate than every point of every larger model that costs no more (at least one such point
    exists), and the compute-optimal fit (scaling_fit.json) has a positive slope a in
    log10 C = a log10 N + b (the optimal model grows with compute).

How: `paper_findings(curves, fits_by_view)` returns {view: {finding: {"holds": bool, ...}}};
eval.report writes it for the `paper` and `total` views. Strategy names are the records' `strategy`
field (majority, weighted_majority, best_of_n, rebase): a run without one of them gets
"holds": null with the reason.
"""

from __future__ import annotations

import math

import pandas as pd

MIN_BUDGET_A = 8
MARGIN_A = 0.03
TOP_BUDGET = 64
TOLERANCE_B = 0.02
FLOPS_RATIO_C = 0.5
MODELS_NEEDED = 2


def _curve(table: pd.DataFrame, model: str, strategy: str) -> pd.DataFrame:
    """One model's points of `strategy`, by budget; a sampling strategy's own aggregator when the
    entry voted several ways."""
    g = table[(table["model"] == model) & (table["strategy"] == strategy)]
    if g["aggregator"].nunique() > 1 and (g["aggregator"] == strategy).any():
        g = g[g["aggregator"] == strategy]
    return g.sort_values("budget", kind="stable")


def _missing(table: pd.DataFrame, *names: str) -> str | None:
    absent = [n for n in names if not (table["strategy"] == n).any()]
    return f"the run has no {', '.join(absent)} points" if absent else None


def weighted_over_majority(table: pd.DataFrame, view: str) -> dict:
    if why := _missing(table, "majority", "weighted_majority"):
        return {"holds": None, "why": why}
    below, margins = [], {}
    for model in sorted(table["model"].unique()):
        m = _curve(table, model, "majority").set_index("budget")["accuracy"]
        w = _curve(table, model, "weighted_majority").set_index("budget")["accuracy"]
        for b in sorted(set(m.index) & set(w.index)):
            if b >= MIN_BUDGET_A and w[b] < m[b] - 1e-12:
                below.append({"model": model, "budget": int(b), "weighted": round(w[b], 4), "majority": round(m[b], 4)})
        if TOP_BUDGET in m.index and TOP_BUDGET in w.index:
            margins[model] = round(float(w[TOP_BUDGET] - m[TOP_BUDGET]), 4)
    wide = [k for k, v in margins.items() if v >= MARGIN_A - 1e-12]
    return {
        "holds": not below and len(wide) >= MODELS_NEEDED,
        "below_majority": below,
        f"margin_at_{TOP_BUDGET}": margins,
        "models_with_margin": wide,
    }


def best_of_n_monotone(table: pd.DataFrame, view: str) -> dict:
    if why := _missing(table, "best_of_n"):
        return {"holds": None, "why": why}
    drops, curves = [], {}
    for model in sorted(table["model"].unique()):
        c = _curve(table, model, "best_of_n")
        c = c[(c["budget"] >= 4) & (c["budget"] <= TOP_BUDGET)]
        curves[model] = {int(b): round(a, 4) for b, a in zip(c["budget"], c["accuracy"])}
        best_so_far = -math.inf
        for b, a in zip(c["budget"], c["accuracy"]):
            if a < best_so_far - TOLERANCE_B - 1e-12:
                drops.append(
                    {"model": model, "budget": int(b), "accuracy": round(a, 4), "earlier_best": round(best_so_far, 4)}
                )
            best_so_far = max(best_so_far, a)
    return {"holds": not drops, "drops": drops, "curves": curves}


def rebase_half_flops(table: pd.DataFrame, view: str) -> dict:
    if why := _missing(table, "weighted_majority", "rebase"):
        return {"holds": None, "why": why}
    col, per = f"flops_{view}", {}
    for model in sorted(table["model"].unique()):
        w = _curve(table, model, "weighted_majority")
        r = table[(table["model"] == model) & (table["strategy"] == "rebase")]
        if w.empty or r.empty:
            continue
        target = w["accuracy"].max()
        ref = w[w["accuracy"] == target][col].min()
        reach = r[r["accuracy"] >= target - 1e-12]
        ratio = float(reach[col].min() / ref) if len(reach) else None
        per[model] = {
            "weighted_best": round(target, 4),
            "weighted_flops": ref,
            "rebase_best": round(r["accuracy"].max(), 4),
            "flops_ratio": None if ratio is None else round(ratio, 4),
        }
    ok = [m for m, v in per.items() if v["flops_ratio"] is not None and v["flops_ratio"] <= FLOPS_RATIO_C]
    return {"holds": len(ok) >= MODELS_NEEDED, "models": per, "models_within_half": ok}


def smaller_model_wins(table: pd.DataFrame, view: str, fit: dict | None) -> dict:
    col = f"flops_{view}"
    t = table[table["model_params"] > 0]
    wins = []
    for _, p in t[t["budget"] > 1].iterrows():
        larger = t[(t["model_params"] > p["model_params"]) & (t[col] <= p[col])]
        if len(larger) and (p["accuracy"] > larger["accuracy"]).all():
            wins.append(
                {
                    "model": p["model"],
                    "strategy": p["strategy"],
                    "aggregator": p["aggregator"],
                    "budget": int(p["budget"]),
                    "accuracy": round(p["accuracy"], 4),
                    "flops": p[col],
                    "beats": sorted(larger["model"].unique()),
                    "best_larger_accuracy": round(larger["accuracy"].max(), 4),
                }
            )
    slope = None if not fit else fit.get("a")
    wins.sort(key=lambda w: w["accuracy"] - w["best_larger_accuracy"], reverse=True)
    return {
        "holds": bool(wins) and slope is not None and slope > 0,
        "optimal_size_slope": slope,
        "n_points": len(wins),
        "widest": wins[:3],
    }


def paper_findings(table: pd.DataFrame, fits_by_view: dict[str, list[dict]]) -> dict:
    """{view: {finding: result}} for each view in `fits_by_view` (its scaling_fit compute_optimal
    list, one entry per dataset); several datasets are checked one by one."""
    out = {}
    for view, fits in fits_by_view.items():
        per_ds = {}
        for ds, g in table.groupby("dataset", sort=True):
            fit = next((f.get("fit") for f in fits if f.get("dataset") == ds), None)
            per_ds[ds] = {
                "weighted_over_majority": weighted_over_majority(g, view),
                "best_of_n_monotone": best_of_n_monotone(g, view),
                "rebase_half_flops": rebase_half_flops(g, view),
                "smaller_model_wins": smaller_model_wins(g, view, fit),
            }
        out[view] = per_ds
    return out


TITLES = {
    "weighted_over_majority": "(a) weighted majority >= majority at every budget >= 8, +3 points at 64 for two models",
    "best_of_n_monotone": "(b) best-of-N does not fall from 4 to 64 samples (within 0.02)",
    "rebase_half_flops": "(c) REBASE reaches weighted majority's best at <= half its FLOPs, for two models",
    "smaller_model_wins": "(d) a smaller model with search beats every larger model at equal FLOPs; optimal size grows",
}


def holds(result: dict) -> dict:
    """{view: {dataset: {finding: true/false/null}}}: the summary line's part."""
    return {v: {ds: {k: r["holds"] for k, r in f.items()} for ds, f in per.items()} for v, per in result.items()}


def section(result: dict) -> str:
    """The index.html section: one row per finding, one column per view and dataset."""
    import html

    cols = [(v, ds) for v, per in result.items() for ds in per]
    mark = {True: "holds", False: "does not hold", None: "not measured"}
    head = "".join(f"<th>{html.escape(ds)} ({html.escape(v)} FLOPs)</th>" for v, ds in cols)
    rows = "".join(
        f"<tr><td>{html.escape(t)}</td>"
        + "".join(f"<td>{mark[result[v][ds][k]['holds']]}</td>" for v, ds in cols)
        + "</tr>"
        for k, t in TITLES.items()
    )
    return (
        f"<h2>The paper's findings, checked</h2><p>Rules and numbers: findings.json.</p>"
        f"<table><tr><th>finding</th>{head}</tr>{rows}</table>"
    )
