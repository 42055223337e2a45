"""Compute-optimal tables of `rebase report` (compute_optimal.csv / .json): for each FLOP budget,
the configuration to run, overall and per difficulty level, and what choosing per level gains.

Why: the best strategy depends on the budget and on how hard the question is (Snell et al. 2024);
a sweep already holds the answer, this turns it into the choice a user makes.

How: `compute_optimal(df, "total")` with df from eval.report.load_records; returns (rows, summary).

Definitions (per dataset; a configuration = model x strategy x aggregator x budget):
- per-problem matrices: accuracy = mean `correct` over the problem's seeds, cost = mean FLOPs (the
  chosen view). Only configurations with a record for every problem of the dataset take part, so
  every row below averages the same problems (the summary counts the ones left out).
- the budget grid: 10^(k/4) (four points per decade) from the cheapest configuration's mean cost
  to the first point at or above the dearest one.
- `overall` rows: at budget B, the configuration with the highest accuracy whose mean cost <= B
  (ties: the cheaper), with its 95% bootstrap CI over problems (eval.curves.bootstrap_ci).
- `level` rows: the same on each level's problems, with each configuration's mean cost on them.
- levels: the records' `level` when every problem has one; otherwise difficulty bins estimated
  from the sweep itself (eval.difficulty), the method named in the `level_source` column.
- `allocation` rows: every level runs its own configuration; the allocation with the highest
  accuracy whose average cost (levels weighted by their share of problems) is <= B, found exactly
  by combining the levels' accuracy/cost Pareto fronts. Its `flops_ratio` is the single best
  configuration's cost at B divided by the cheapest allocation's cost reaching the same accuracy
  (>= 1: running one configuration everywhere is itself an allocation).
- the choice is made on the problems it is scored on, so allocation figures are in-sample (an
  upper bound on what a choice made beforehand would gain). The summary's `allocation_held_out`
  checks them two-fold: choose on half of each level's problems, score on the other half.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from eval.curves import bootstrap_ci
from eval.difficulty import assign_levels

CONFIG = ["model", "strategy", "aggregator", "budget"]
STEPS_PER_DECADE = 4


def budget_grid(costs: np.ndarray) -> np.ndarray:
    """10^(k/4) from the cheapest cost (the first grid point it fits) to the dearest one."""
    costs = costs[np.isfinite(costs) & (costs > 0)]
    if costs.size == 0:
        return np.array([])
    lo = math.ceil(math.log10(costs.min()) * STEPS_PER_DECADE - 1e-9)
    hi = math.ceil(math.log10(costs.max()) * STEPS_PER_DECADE - 1e-9)
    return 10.0 ** (np.arange(lo, hi + 1) / STEPS_PER_DECADE)


def matrices(d: pd.DataFrame, view: str) -> tuple[pd.DataFrame, pd.DataFrame, int]:
    """Problem x configuration accuracy and cost; configurations missing a problem are dropped."""
    col = f"flops_{view}"
    keyed = d.assign(config=d[CONFIG].astype(str).agg("|".join, axis=1))
    acc = keyed.pivot_table(index="problem_id", columns="config", values="correct", aggfunc="mean")
    cost = keyed.pivot_table(index="problem_id", columns="config", values=col, aggfunc="mean", dropna=False)
    complete = acc.notna().all() & cost.reindex_like(acc).notna().all()
    keep = complete[complete].index
    return acc[keep], cost.reindex_like(acc)[keep], int((~complete).sum())


def _best(acc: pd.Series, cost: pd.Series, budget: float) -> str | None:
    """The most accurate configuration with cost <= budget (ties: the cheaper, then the name)."""
    fits = cost[cost <= budget * (1 + 1e-9)]
    if fits.empty:
        return None
    ranked = pd.DataFrame({"acc": acc[fits.index], "cost": fits}).sort_values(
        ["acc", "cost"], ascending=[False, True], kind="stable"
    )
    return str(ranked.index[0])


def _row(kind: str, budget: float, config: str, per_problem: np.ndarray, cost: float, key: str) -> dict:
    lo, hi = bootstrap_ci(per_problem, key)
    return {
        "table": kind,
        "flop_budget": budget,
        **dict(zip(CONFIG, config.split("|"))),
        "accuracy": float(per_problem.mean()),
        "ci_low": lo,
        "ci_high": hi,
        "mean_flops": cost,
        "n_problems": int(len(per_problem)),
    }


def pareto_front(points: list[tuple[float, float, Any]]) -> list[tuple[float, float, Any]]:
    """(cost, accuracy, payload) points not beaten by a cheaper-or-equal, at-least-as-accurate one."""
    out, best = [], -math.inf
    for c, a, p in sorted(points, key=lambda t: (t[0], -t[1])):
        if a > best + 1e-12:
            out.append((c, a, p))
            best = a
    return out


def allocation_front(acc: pd.DataFrame, cost: pd.DataFrame, levels: pd.Series) -> list[tuple]:
    """Exact Pareto front of per-level allocations: (average cost, accuracy, {level: config})."""
    n = len(acc)
    front: list[tuple] = [(0.0, 0.0, {})]
    for lvl, ids in levels.groupby(levels).groups.items():
        w = len(ids) / n
        own = pareto_front([(w * cost.loc[ids, c].mean(), w * acc.loc[ids, c].mean(), c) for c in acc.columns])
        front = pareto_front([(c0 + c1, a0 + a1, {**p0, lvl: cfg}) for c0, a0, p0 in front for c1, a1, cfg in own])
    return front


def _allocation_vector(acc: pd.DataFrame, levels: pd.Series, choice: dict) -> np.ndarray:
    return np.array([acc.at[pid, choice[levels[pid]]] for pid in acc.index], dtype=float)


def _cheapest_reaching(front: list[tuple], target: float) -> tuple | None:
    return next((pt for pt in front if pt[1] >= target - 1e-12), None)


def dataset_tables(d: pd.DataFrame, view: str, dataset: str) -> tuple[list[dict], dict]:
    acc, cost, dropped = matrices(d, view)
    if acc.empty:
        return [], {"dataset": dataset, "note": "no configuration has a record for every problem"}
    levels, source = assign_levels(d, acc.index)
    grid = budget_grid(cost.mean().to_numpy())
    mean_acc, mean_cost = acc.mean(), cost.mean()
    rows: list[dict] = []
    for b in grid:
        cfg = _best(mean_acc, mean_cost, b)
        rows.append(_row("overall", b, cfg, acc[cfg].to_numpy(), float(mean_cost[cfg]), f"{dataset}|{b}|{cfg}"))
    for lvl, ids in levels.groupby(levels).groups.items():
        la, lc = acc.loc[ids], cost.loc[ids]
        for b in grid:
            cfg = _best(la.mean(), lc.mean(), b)
            if cfg is not None:
                rows.append(
                    {
                        **_row(
                            "level", b, cfg, la[cfg].to_numpy(), float(lc[cfg].mean()), f"{dataset}|{lvl}|{b}|{cfg}"
                        ),
                        "level": lvl,
                    }
                )
    front = allocation_front(acc, cost, levels)
    for r in [r for r in rows if r["table"] == "overall"]:
        rows.append(_allocation_row(r, front, acc, levels, dataset))
    for r in rows:
        r.update(dataset=dataset, view=view, level_source=source)
    summary = _summary(rows, front, acc, levels, dataset, source, dropped)
    summary["allocation_held_out"] = held_out(acc, cost, levels)
    return rows, summary


def _allocation_row(single: dict, front: list[tuple], acc: pd.DataFrame, levels: pd.Series, dataset: str) -> dict:
    b = single["flop_budget"]
    fit = [pt for pt in front if pt[0] <= b * (1 + 1e-9)]
    c, _, choice = fit[-1]  # the front is sorted by cost with accuracy rising: the last one fits best
    vec = _allocation_vector(acc, levels, choice)
    lo, hi = bootstrap_ci(vec, f"{dataset}|allocation|{b}")
    reach = _cheapest_reaching(front, single["accuracy"])
    return {
        "table": "allocation",
        "flop_budget": b,
        "configuration": _describe(choice),
        "accuracy": float(vec.mean()),
        "ci_low": lo,
        "ci_high": hi,
        "mean_flops": c,
        "n_problems": int(len(vec)),
        "single_accuracy": single["accuracy"],
        "single_flops": single["mean_flops"],
        "flops_ratio": single["mean_flops"] / reach[0] if reach and reach[0] > 0 else float("nan"),
    }


def _describe(choice: dict) -> str:
    return "; ".join(f"L{lvl}: {cfg.replace('|', '/')}" for lvl, cfg in sorted(choice.items(), key=lambda t: str(t[0])))


def _summary(
    rows: list[dict], front: list[tuple], acc: pd.DataFrame, levels: pd.Series, dataset: str, source: str, dropped: int
) -> dict:
    overall = [r for r in rows if r["table"] == "overall"]
    best = max(overall, key=lambda r: (r["accuracy"], -r["mean_flops"]))
    reach = _cheapest_reaching(front, best["accuracy"])
    at_cost = [pt for pt in front if pt[0] <= best["mean_flops"] * (1 + 1e-9)][-1]
    return {
        "dataset": dataset,
        "level_source": source,
        "configurations": int(acc.shape[1]),
        "configurations_left_out": dropped,
        "problems": int(len(acc)),
        "levels": {str(k): int(v) for k, v in levels.value_counts().sort_index().items()},
        "best_single": {k: best[k] for k in CONFIG + ["accuracy", "ci_low", "ci_high", "mean_flops"]},
        "allocation_at_equal_accuracy": {
            "accuracy": reach[1],
            "mean_flops": reach[0],
            "flops_ratio": best["mean_flops"] / reach[0] if reach[0] > 0 else None,
            "configuration": _describe(reach[2]),
        },
        "allocation_at_equal_cost": {
            "accuracy": at_cost[1],
            "mean_flops": at_cost[0],
            "accuracy_gain": at_cost[1] - best["accuracy"],
            "configuration": _describe(at_cost[2]),
        },
        "note": "per-level choices are made on the problems they are scored on (in-sample)",
    }


def held_out(acc: pd.DataFrame, cost: pd.DataFrame, levels: pd.Series) -> dict:
    """The in-sample figures' out-of-sample check, two-fold: within each level, problems (sorted by
    id) alternate between halves. On one half pick the best single configuration and the cheapest
    allocation reaching its accuracy there; score both on the other half; average the two ways."""
    ids = levels.groupby(levels).apply(lambda g: sorted(g.index)).to_dict()
    if min(len(v) for v in ids.values()) < 2:
        return {"note": "not checked: a level has fewer than 2 problems"}
    halves = [[p for lv in ids.values() for p in lv[k::2]] for k in (0, 1)]
    out = {"single_accuracy": 0.0, "single_flops": 0.0, "allocation_accuracy": 0.0, "allocation_flops": 0.0}
    for pick, score in ((halves[0], halves[1]), (halves[1], halves[0])):
        a, c = acc.loc[pick], cost.loc[pick]
        single = _best(a.mean(), c.mean(), math.inf)
        reach = _cheapest_reaching(allocation_front(a, c, levels[pick]), a[single].mean())
        out["single_accuracy"] += acc.loc[score, single].mean() / 2
        out["single_flops"] += cost.loc[score, single].mean() / 2
        chosen = [reach[2][levels[p]] for p in score]
        out["allocation_accuracy"] += float(np.mean([acc.at[p, k] for p, k in zip(score, chosen)])) / 2
        out["allocation_flops"] += float(np.mean([cost.at[p, k] for p, k in zip(score, chosen)])) / 2
    out["flops_ratio"] = out["single_flops"] / out["allocation_flops"] if out["allocation_flops"] > 0 else None
    out["note"] = "chosen on one half of each level's problems, scored on the other, both ways averaged"
    return {k: (float(v) if isinstance(v, (float, np.floating)) else v) for k, v in out.items()}


COLUMNS = [
    "dataset",
    "view",
    "table",
    "level",
    "level_source",
    "flop_budget",
    "model",
    "strategy",
    "aggregator",
    "budget",
    "configuration",
    "accuracy",
    "ci_low",
    "ci_high",
    "mean_flops",
    "n_problems",
    "single_accuracy",
    "single_flops",
    "flops_ratio",
]


def compute_optimal(df: pd.DataFrame, view: str) -> tuple[pd.DataFrame, list[dict]]:
    """All datasets' rows (COLUMNS) and one summary per dataset."""
    rows, summaries = [], []
    for dataset, d in df[df[f"flops_{view}"].notna()].groupby("dataset", sort=True):
        r, s = dataset_tables(d, view, str(dataset))
        rows += r
        summaries.append(s)
    out = pd.DataFrame(rows, columns=COLUMNS)
    lv = pd.to_numeric(out["level"], errors="coerce")
    if lv.notna().sum() == out["level"].notna().sum() and (lv.dropna() % 1 == 0).all():
        out["level"] = lv.astype("Int64")  # 1, 2, ... rather than 1.0, 2.0 beside the empty rows
    return out, summaries
