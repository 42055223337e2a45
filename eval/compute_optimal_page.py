"""The "Compute-optimal configuration per FLOP budget" section of index.html (eval/html.py puts it
on the page): the headline figures, the overall and allocation tables, per-level rows, and the
adaptive-vs-fixed comparison.

How: `section(rows, summaries, gains, view)` returns an HTML fragment; every value is escaped.
"""

from __future__ import annotations

import html

import pandas as pd


def _fmt(v) -> str:
    if v is None or (isinstance(v, float) and v != v):
        return "n/a"
    return f"{v:.3g}" if isinstance(v, float) else str(v)


def _table(df: pd.DataFrame) -> str:
    if df.empty:
        return '<p class="note">none</p>'
    body = df.to_html(index=False, classes="data", border=0, na_rep="", escape=True, float_format=lambda v: f"{v:.4g}")
    return f'<div class="scroll">{body}</div>'


def _headline(s: dict) -> str:
    e = html.escape
    if "best_single" not in s:
        return f'<p class="note">{e(s.get("dataset", ""))}: {e(s.get("note", ""))}</p>'
    b, eq, ec = s["best_single"], s["allocation_at_equal_accuracy"], s["allocation_at_equal_cost"]
    return (
        f"<h3>{e(s['dataset'])}</h3><ul>"
        f"<li>levels: {e(s['level_source'])} ({e(', '.join(f'level {k}: {v}' for k, v in s['levels'].items()))}"
        f" problems); {s['configurations']} configurations"
        f" over {s['problems']} problems ({s['configurations_left_out']} left out: not run on every problem)</li>"
        f"<li>best single configuration: <code>{e(b['model'])} / {e(b['strategy'])} / {e(b['aggregator'])}"
        f" @ {e(str(b['budget']))}</code>, accuracy {_fmt(b['accuracy'])} [{_fmt(b['ci_low'])}, "
        f"{_fmt(b['ci_high'])}] at {_fmt(b['mean_flops'])} FLOPs</li>"
        f"<li>per-level allocation at equal accuracy: {_fmt(eq['mean_flops'])} FLOPs, "
        f"<b>{_fmt(eq['flops_ratio'])}x fewer</b> (<code>{e(eq['configuration'])}</code>)</li>"
        f"<li>per-level allocation at equal cost: accuracy {_fmt(ec['accuracy'])} "
        f"({'+' if ec['accuracy_gain'] >= 0 else ''}{_fmt(ec['accuracy_gain'])})</li>"
        f"{_held_out(s.get('allocation_held_out') or {})}"
        f'<li class="note">{e(s["note"])}</li></ul>'
    )


def _held_out(h: dict) -> str:
    if not h or "flops_ratio" not in h:
        return f"<li>held out: {html.escape(h.get('note', 'not checked'))}</li>" if h else ""
    return (
        f"<li>held out ({html.escape(h['note'])}): best single configuration {_fmt(h['single_accuracy'])} at "
        f"{_fmt(h['single_flops'])} FLOPs, per-level allocation {_fmt(h['allocation_accuracy'])} at "
        f"{_fmt(h['allocation_flops'])} FLOPs ({_fmt(h['flops_ratio'])}x fewer)</li>"
    )


def _gains(gains: list[dict]) -> pd.DataFrame:
    rows = []
    for g in gains:
        fb, ab = g.get("fixed_best") or {}, g.get("adaptive_best") or {}
        at = g.get("adaptive_at_fixed_best") or {}
        rows.append(
            {
                "dataset": g["dataset"],
                "model": g["model"],
                "adaptive": g["strategy"],
                "fixed": g["fixed_strategy"],
                "aggregator": g["aggregator"],
                "fixed best acc": fb.get("accuracy"),
                "fixed best N": fb.get("budget"),
                "fixed best FLOPs": fb.get("flops"),
                "adaptive reaches it": g.get("reaches_fixed_best"),
                "adaptive max budget": at.get("budget"),
                "adaptive FLOPs": at.get("flops"),
                "FLOP ratio": g.get("flops_ratio"),
                "adaptive best acc": ab.get("accuracy"),
                "ratio at adaptive best": g.get("ratio_at_adaptive_best"),
                "note": g.get("note"),
            }
        )
    return pd.DataFrame(rows)


def section(rows: pd.DataFrame, summaries: list[dict], gains: list[dict], view: str) -> str:
    head = "".join(_headline(s) for s in summaries)
    cols = [
        "dataset",
        "flop_budget",
        "model",
        "strategy",
        "aggregator",
        "budget",
        "accuracy",
        "ci_low",
        "ci_high",
        "mean_flops",
    ]
    overall = rows[rows["table"] == "overall"][cols] if not rows.empty else pd.DataFrame()
    alloc = (
        rows[rows["table"] == "allocation"][
            [
                "dataset",
                "flop_budget",
                "accuracy",
                "ci_low",
                "ci_high",
                "mean_flops",
                "single_accuracy",
                "single_flops",
                "flops_ratio",
                "configuration",
            ]
        ]
        if not rows.empty
        else pd.DataFrame()
    )
    level = rows[rows["table"] == "level"][["level"] + cols] if not rows.empty else pd.DataFrame()
    adaptive = (
        (
            "<h3>Adaptive budgets vs fixed-N voting</h3><p>FLOP ratio: the fixed strategy's best "
            "point's FLOPs / the cheapest adaptive point at least as accurate. Ratio at adaptive best: "
            "the cheapest fixed point at least as accurate as adaptive's best / adaptive's best.</p>"
            + _table(_gains(gains))
        )
        if gains
        else ""
    )
    return f"""<p>For each FLOP budget per problem ({html.escape(view)} view; a grid of four points per
decade), the configuration (model, strategy, aggregator, budget) with the highest accuracy whose mean
cost fits. Per-level allocation: each difficulty level runs its own configuration, at the same
average cost; its FLOP ratio is the single configuration's cost over the cheapest allocation
reaching the same accuracy. Tables in <code>compute_optimal.csv</code>, headline figures in
<code>compute_optimal.json</code>.</p>
{head}
<h3>Best single configuration per budget</h3>{_table(overall)}
<h3>Per-level allocation per budget</h3>{_table(alloc)}
<h3>Best configuration per level and budget</h3>{_table(level)}
{adaptive}"""
