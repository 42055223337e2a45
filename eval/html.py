"""index.html of `rebase report`: one self-contained page (no server, no scripts, plain CSS) with the
run summary, the plots, and the curves, Pareto, fit and failure tables.

Why: a report is opened from a copied folder or a CI artifact; images are referenced relatively
(they sit next to index.html) and every table is inline HTML (pandas `to_html`, escaped).

How: `write_index(path, summary, curves, front, levels, fits, images)` from eval.report.
"""

from __future__ import annotations

import html
from pathlib import Path

import pandas as pd

CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2em auto;
       max-width: 1200px; color: #222; line-height: 1.4; padding: 0 1em; }
h1 { border-bottom: 2px solid #444; padding-bottom: .2em; }
h2 { margin-top: 2em; border-bottom: 1px solid #ccc; }
table.data { border-collapse: collapse; font-size: 13px; margin: .5em 0; }
table.data th, table.data td { border: 1px solid #ccc; padding: 3px 7px; text-align: right; }
table.data th { background: #eef1f5; }
table.data tr:nth-child(even) td { background: #f8f9fb; }
dl.summary { display: grid; grid-template-columns: max-content auto; gap: .2em 1.2em; }
dl.summary dt { font-weight: 600; }
img { max-width: 100%; border: 1px solid #ddd; margin: .5em 0; }
.note { color: #666; font-style: italic; }
code { background: #f2f2f2; padding: 0 .3em; }
.scroll { max-height: 480px; overflow: auto; }
"""

TITLES = {
    "accuracy_vs_flops.png": "Accuracy vs FLOPs, with the Pareto frontier",
    "optimal_model_size.png": "Compute-optimal model size vs FLOP budget",
    "accuracy_by_level.png": "Accuracy by difficulty level",
    "compute_optimal.png": "Best accuracy per FLOP budget: one configuration vs one per level; adaptive budgets",
}


def _table(df: pd.DataFrame, scroll: bool = False) -> str:
    if df is None or df.empty:
        return '<p class="note">none</p>'
    body = df.to_html(index=False, classes="data", border=0, na_rep="", escape=True, float_format=lambda v: f"{v:.4g}")
    return f'<div class="scroll">{body}</div>' if scroll else body


def _fits_table(fits: list[dict]) -> pd.DataFrame:
    cols = ["dataset", "model", "strategy", "aggregator", "form", "a", "b", "c", "m", "k", "r2", "rmse", "n_points"]
    df = pd.DataFrame(fits)
    if df.empty:
        return df
    if "linear" in df.columns:  # the saturating fits' linear comparison, for a side-by-side R^2
        df["linear_r2"] = [d.get("r2") if isinstance(d, dict) else None for d in df["linear"]]
        cols.append("linear_r2")
    return df[[c for c in cols if c in df.columns]]


def _optimal_section(parts: list[dict]) -> str:
    out = []
    for part in parts:
        fit = part.get("fit")
        if fit:
            r2 = "n/a" if fit.get("r2") is None else f"{fit['r2']:.3f}"
            line = (
                f"<p>Fit: <code>log10 C = {fit['a']:.3f} log10 N + {fit['b']:.3f}</code> over "
                f"{fit['n_models']} models (R<sup>2</sup> {r2}; the paper: "
                "<code>log10 C = 1.19 log10 N + 2.03</code>).</p>"
            )
        else:
            line = f'<p class="note">{html.escape(part.get("note", "no fit"))}</p>'
        out.append(
            f"<h3>{html.escape(str(part.get('dataset', '')))}</h3>{line}"
            "<p>C*(N): the smallest FLOPs at which model N is the compute-optimal choice "
            "(its cheapest point on the Pareto frontier).</p>"
            f"{_table(pd.DataFrame(part.get('entry_points', [])))}"
            "<p>Optimal model per FLOP budget:</p>"
            f"{_table(pd.DataFrame(part.get('grid', [])), scroll=True)}"
        )
    return "\n".join(out) or '<p class="note">none</p>'


def write_index(
    path: Path,
    summary: dict,
    curves: pd.DataFrame,
    front: pd.DataFrame,
    levels: pd.DataFrame,
    fits: dict,
    images: list[str],
    optimal_html: str = "",
) -> None:
    """Write the page; `images` are file names relative to the page; `optimal_html` is the
    compute-optimal section (eval/compute_optimal_page.py, already escaped)."""
    e = html.escape
    view = summary["flops_view"]
    facts = {
        "run directory": summary["run_dir"],
        "records": summary["records"],
        "problems": summary["problems"],
        "models": ", ".join(summary["models"]),
        "FLOP view": f"{view} (flops_{view})",
        "failures": summary["failures"],
        "unparsable lines skipped": summary["skipped_lines"],
    }
    summary_html = "".join(f"<dt>{e(k)}</dt><dd>{e(str(v))}</dd>" for k, v in facts.items())
    figs = "".join(f'<h3>{e(TITLES.get(name, name))}</h3><img src="{e(name)}" alt="{e(name)}">' for name in images)
    level_html = (
        _table(levels, scroll=True) if not levels.empty else ('<p class="note">records carry no difficulty levels</p>')
    )
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>rebase report: {e(Path(summary["run_dir"]).name)}</title>
<style>{CSS}</style></head>
<body>
<h1>rebase report: {e(Path(summary["run_dir"]).name)}</h1>
<h2>Run summary</h2>
<dl class="summary">{summary_html}</dl>
<p>Accuracy: mean of <code>correct</code> over problems (each problem's seeds averaged first);
95% CI: bootstrap over problems (1000 resamples). Failed records count as wrong.
FLOPs: mean per problem in the {e(view)} view.</p>
<h2>Plots</h2>
{figs}
<h2>Accuracy curves</h2>
{_table(curves, scroll=True)}
<h2>Pareto frontier ({e(view)} view)</h2>
<p>Points with no other point at &le; FLOPs and &ge; accuracy (one strictly), sorted by FLOPs.</p>
{_table(front)}
<h2>Scaling fits</h2>
<p>Per curve: <code>acc(C) = a - b &middot; C<sup>-c</sup></code> (fitted in log10 C) with at least
4 budgets, else <code>acc(C) = m &middot; log10 C + k</code>.</p>
{_table(_fits_table(fits.get("curve_fits", [])), scroll=True)}
<h2>Compute-optimal model size</h2>
{_optimal_section(fits.get("compute_optimal", []))}
<h2>Compute-optimal configuration per FLOP budget</h2>
{optimal_html or '<p class="note">none</p>'}
<h2>Accuracy by level</h2>
{level_html}
<h2>Failures ({len(fits.get("failures", []))})</h2>
{_table(pd.DataFrame(fits.get("failures", [])), scroll=True)}
</body></html>
"""
    path.write_text(page, encoding="utf-8")
