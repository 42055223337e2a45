"""`rebase report DIR`: turn a run's records into curves, a Pareto frontier, scaling fits, plots
and a self-contained index.html, all under DIR/report/.

Why: the report must run from DIR/results.jsonl alone (no torch, no model), so a sweep killed
halfway, or copied off a GPU box, can still be summarised.

How: `write_report(Path("runs/demo"))` (the CLI calls it) or
`python -c "from pathlib import Path; from eval.report import write_report; print(write_report(Path('runs/demo')))"`.

Record rules (docs/ARCHITECTURE.md, eval/records.py):
- a line that does not parse (a torn last line after a kill) is skipped with a warning;
- when a key (model, dataset, problem_id, strategy, aggregator, budget, seed) appears twice (a
  resumed run re-appended it) the LAST line wins;
- a record with a non-null `error` counts as wrong (correct = 0) in every accuracy, so a strategy
  that crashes cannot look better than one that answers; it is also listed under failures and
  counted in curves.csv's n_failed.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pandas as pd

from eval.records import KEY_FIELDS
from rebase.errors import BadInput
from rebase.flops import VIEWS
from eval.outdir import check_writable, inside

FLOP_VIEWS = VIEWS
NUMERIC = (
    "model_params",
    "correct",
    "policy_generated_tokens",
    "prm_tokens",
    "flops_paper",
    "flops_policy",
    "flops_total",
    "wall_s",
)


def load_records(path: Path) -> tuple[pd.DataFrame, int]:
    """Read results.jsonl into a DataFrame (one row per record key); return it and the number of
    unparsable lines skipped."""
    if not path.exists():
        raise BadInput(f"{path}: no results.jsonl (run `rebase run` or `rebase sweep` first)")
    path = inside(path.parent, path.name)  # no link, no directory in its place
    rows, skipped = [], 0
    with path.open("rb") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line.decode("utf-8"))
            except ValueError:  # not JSON, or not UTF-8 (UnicodeDecodeError): skipped as the sweep does
                # A kill mid-write leaves a torn last line; the rest of the file is still good.
                warnings.warn(f"{path}:{lineno}: skipping a line that does not parse", stacklevel=2)
                skipped += 1
                continue
            if not isinstance(rec, dict):
                raise BadInput(f"{path}:{lineno}: a record must be a JSON object")
            missing = [k for k in KEY_FIELDS + ("correct",) if k not in rec]
            if missing:
                raise BadInput(f"{path}:{lineno}: record lacks {', '.join(missing)}")
            rows.append(rec)
    if not rows:
        raise BadInput(f"{path}: no records")
    df = pd.DataFrame(rows)
    for col in NUMERIC:
        # float: `correct` may arrive as JSON true/false, and failures are set to 0.0 below.
        df[col] = pd.to_numeric(df[col], errors="coerce").astype(float) if col in df else float("nan")
    for col in ("level", "error"):
        if col not in df:
            df[col] = None
    df["error"] = df["error"].where(df["error"].notna(), None)
    failed = df["error"].notna()
    df.loc[failed, "correct"] = 0.0
    if df["correct"].isna().any():
        bad = df.loc[df["correct"].isna(), "problem_id"].iloc[0]
        raise BadInput(f"{path}: `correct` is not a number for problem {bad!r}")
    for col in KEY_FIELDS:
        if col not in ("budget", "seed"):
            df[col] = df[col].astype(str)
    df["budget"] = pd.to_numeric(df["budget"], errors="coerce")
    df["seed"] = pd.to_numeric(df["seed"], errors="coerce")
    if df[["budget", "seed"]].isna().any().any():
        raise BadInput(f"{path}: budget and seed must be numbers")
    df = df.drop_duplicates(subset=list(KEY_FIELDS), keep="last").reset_index(drop=True)
    return df, skipped


def resolve_view(run_dir: Path, flops_view: str | None) -> str:
    """The FLOP view: the argument, else config.json's "flops_view", else "total"."""
    if flops_view is None:
        cfg = inside(run_dir, "config.json")
        if cfg.is_file():
            try:
                flops_view = json.loads(cfg.read_bytes().decode("utf-8")).get("flops_view")
            except (ValueError, AttributeError) as exc:
                raise BadInput(f"{cfg}: not a JSON object ({type(exc).__name__})") from None
        flops_view = flops_view or "total"
    if flops_view not in FLOP_VIEWS:
        raise BadInput(f"unknown flops view {flops_view!r}; available: {', '.join(FLOP_VIEWS)}")
    return flops_view


def write_report(run_dir: Path, flops_view: str | None = None) -> dict:
    """Write DIR/report/{curves,pareto,levels,compute_optimal}.csv, scaling_fit.json,
    compute_optimal.json, PNG plots and index.html;
    return the one-line JSON summary as a dict."""
    # Imported here so that `import eval.report` stays cheap (matplotlib loads only when used).
    from eval import curves, findings, html, pareto, plots, scaling

    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise BadInput(f"{run_dir}: not a directory")
    view = resolve_view(run_dir, flops_view)
    df, skipped = load_records(run_dir / "results.jsonl")
    if df[f"flops_{view}"].isna().all():
        raise BadInput(f"{run_dir / 'results.jsonl'}: no record has flops_{view}")
    out = inside(run_dir, "report", kind="dir")
    check_writable(out, "report:")
    out.mkdir(exist_ok=True)

    table = curves.accuracy_curves(df)
    front = pareto.frontier(table, view)
    levels = curves.level_accuracy(df)
    fits = scaling.scaling_report(table, front, levels, df, view)
    written = {}

    def put(name: str) -> Path:
        written[name] = inside(out, name)
        return written[name]

    table.to_csv(put("curves.csv"), index=False)
    front.to_csv(put("pareto.csv"), index=False)
    if not levels.empty:
        levels.to_csv(put("levels.csv"), index=False)
    put("scaling_fit.json").write_text(json.dumps(fits, indent=2, allow_nan=False) + "\n", encoding="utf-8")
    plots.accuracy_vs_flops(table, front, view, put("accuracy_vs_flops.png"))
    plots.optimal_model_size(fits["compute_optimal"], view, put("optimal_model_size.png"))
    if not levels.empty:
        plots.accuracy_by_level(levels, table, view, put("accuracy_by_level.png"))
    summary = {
        "run_dir": str(run_dir),
        "flops_view": view,
        "records": int(len(df)),
        "problems": int(df["problem_id"].nunique()),
        "models": sorted(df["model"].unique().tolist()),
        "failures": len(fits["failures"]),
        "skipped_lines": skipped,
    }
    optimal = write_compute_optimal(df, table, view, put)
    checked = write_findings(table, fits, view, put)
    html.write_index(
        put("index.html"),
        summary,
        table,
        front,
        levels,
        fits,
        [p.name for k, p in written.items() if k.endswith(".png")],
        optimal["html"] + findings.section(checked),
    )
    summary["files"] = {k: str(p) for k, p in written.items()}
    summary["best"] = best_points(table, view)
    summary["compute_optimal"] = optimal["headline"]
    summary["findings"] = findings.holds(checked)
    return summary


def write_findings(table: pd.DataFrame, fits: dict, view: str, put) -> dict:
    """findings.json: the paper's four findings checked in the report's view and in the paper and
    total views (eval/findings.py)."""
    from eval import findings, pareto, scaling

    fits_by_view = {}
    for v in dict.fromkeys([view, "paper", "total"]):
        if table[f"flops_{v}"].notna().any():
            fits_by_view[v] = (
                fits["compute_optimal"] if v == view else scaling.compute_optimal(table, pareto.frontier(table, v), v)
            )
    checked = findings.paper_findings(table, fits_by_view)
    put("findings.json").write_text(json.dumps(_finite(checked), indent=2, allow_nan=False) + "\n", encoding="utf-8")
    return checked


def write_compute_optimal(df: pd.DataFrame, table: pd.DataFrame, view: str, put) -> dict:
    """compute_optimal.csv / .json / .png (eval/compute_optimal.py, eval/adaptive_gain.py); returns
    the index.html section and the headline figures for the summary line."""
    from eval import adaptive_gain, compute_optimal, compute_optimal_page, compute_optimal_plots

    rows, summaries = compute_optimal.compute_optimal(df, view)
    gains = adaptive_gain.adaptive_vs_fixed(table, df, view)
    rows.to_csv(put("compute_optimal.csv"), index=False)
    blob = {"view": view, "datasets": summaries, "adaptive": gains}
    put("compute_optimal.json").write_text(
        json.dumps(_finite(blob), indent=2, allow_nan=False) + "\n", encoding="utf-8"
    )
    compute_optimal_plots.plot_compute_optimal(rows, gains, view, put("compute_optimal.png"))
    headline = [
        {
            "dataset": s["dataset"],
            "allocation_flops_ratio": _round(s.get("allocation_at_equal_accuracy", {}).get("flops_ratio")),
        }
        for s in summaries
    ]
    headline += [
        {
            "dataset": g["dataset"],
            "model": g["model"],
            "adaptive": g["strategy"],
            "reaches_fixed_best": g.get("reaches_fixed_best"),
            "flops_ratio": _round(g.get("flops_ratio")),
        }
        for g in gains
    ]
    return {"html": compute_optimal_page.section(rows, summaries, gains, view), "headline": headline}


def _round(v):
    return None if v is None or v != v else round(float(v), 4)


def _finite(obj):
    """JSON has no NaN: NaN / inf become null, numpy scalars plain numbers."""
    if isinstance(obj, dict):
        return {str(k): _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    if hasattr(obj, "item") and not isinstance(obj, (str, bytes)):
        obj = obj.item()
    if isinstance(obj, float) and (obj != obj or obj in (float("inf"), float("-inf"))):
        return None
    return obj


def best_points(table: pd.DataFrame, view: str) -> list[dict]:
    """The most accurate point of each model (ties: the cheaper one), for the summary line."""
    col = f"flops_{view}"
    ranked = table.sort_values(["accuracy", col], ascending=[False, True], kind="stable")
    best = ranked.groupby(["dataset", "model"], sort=True).head(1).sort_values(["dataset", "model"])
    keep = ["model", "strategy", "aggregator", "budget", "accuracy", col]
    rows = best[keep].to_dict("records")
    return [{k: (round(float(v), 4) if k == "accuracy" else v) for k, v in r.items()} for r in rows]
