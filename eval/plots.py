"""PNG plots of `rebase report`: accuracy vs FLOPs with the Pareto frontier, compute-optimal model
size vs budget, and accuracy per difficulty level.

Why: a sweep has ~20 curves (models x strategies x aggregators); they stay readable because colour
encodes the strategy (with its aggregator) and line style + marker encode the model, with one
compact legend (one entry per strategy, one per model) below the axes.

How: called by eval.report.write_report; each function takes DataFrames / dicts and a path.
Uses the Agg backend through a Figure object (no pyplot state, no display needed).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*", "h", "<")
STYLES = ("-", "--", ":", "-.")


def _label(strategy: str, aggregator: str) -> str:
    return strategy if aggregator in (strategy, "", "none", "None") else f"{strategy} / {aggregator}"


def _encodings(table: pd.DataFrame) -> tuple[dict, dict]:
    """Colour per strategy/aggregator, (linestyle, marker) per model, in a stable order."""
    strats = sorted({_label(s, a) for s, a in zip(table["strategy"], table["aggregator"])})
    cmap_name = "tab10" if len(strats) <= 10 else "tab20"
    from matplotlib import colormaps

    cmap = colormaps[cmap_name]
    colours = {s: cmap(i % cmap.N) for i, s in enumerate(strats)}
    order = (
        table[["model", "model_params"]]
        .drop_duplicates("model")
        .sort_values(["model_params", "model"], na_position="last")["model"]
        .tolist()
    )
    styles = {m: (STYLES[i % len(STYLES)], MARKERS[i % len(MARKERS)]) for i, m in enumerate(order)}
    return colours, styles


def _legend(fig: Figure, colours: dict, styles: dict, extra: list | None = None) -> None:
    handles = [Line2D([], [], color=c, lw=3, label=s) for s, c in colours.items()]
    handles += [Line2D([], [], color="0.3", ls=ls, marker=mk, label=m) for m, (ls, mk) in styles.items()]
    handles += extra or []
    fig.legend(handles=handles, loc="outside lower center", ncols=min(4, len(handles)), fontsize=9, frameon=False)


def _save(fig: Figure, path: Path) -> None:
    FigureCanvasAgg(fig)
    fig.savefig(path, dpi=110)


def _draw_curves(ax, table: pd.DataFrame, col: str, colours: dict, styles: dict, bands: bool) -> None:
    for (model, strat, agg), g in table.groupby(["model", "strategy", "aggregator"], sort=True):
        g = g[g[col] > 0].sort_values(col)
        if g.empty:
            continue
        colour = colours[_label(strat, agg)]
        ls, mk = styles[model]
        ax.plot(g[col], g["accuracy"], ls=ls, marker=mk, color=colour, ms=5, lw=1.4)
        if bands and {"ci_low", "ci_high"} <= set(g.columns):
            # Faint: with ~20 curves the bands overlap; they show spread, the lines carry the values.
            ax.fill_between(g[col], g["ci_low"], g["ci_high"], color=colour, alpha=0.06, lw=0)


def accuracy_vs_flops(table: pd.DataFrame, front: pd.DataFrame, view: str, path: Path) -> None:
    """Accuracy against mean FLOPs per problem (log x), CI bands, the frontier as a step line."""
    col = f"flops_{view}"
    datasets = sorted(table["dataset"].unique())
    colours, styles = _encodings(table)
    fig = Figure(figsize=(10 * len(datasets), 8.5), layout="constrained")
    axes = fig.subplots(1, len(datasets), squeeze=False)[0]
    for ax, ds in zip(axes, datasets):
        _draw_curves(ax, table[table["dataset"] == ds], col, colours, styles, bands=True)
        fr = front[(front["dataset"] == ds) & (front[col] > 0)].sort_values(col)
        if not fr.empty:
            ax.step(fr[col], fr["accuracy"], where="post", color="black", lw=1.3, ls=(0, (5, 2)), alpha=0.9, zorder=5)
        ax.set_xscale("log")
        ax.set_ylim(-0.02, 1.02)
        ax.grid(True, which="both", alpha=0.25)
        ax.set_xlabel(f"mean FLOPs per problem ({view} view, log scale)")
        ax.set_ylabel("accuracy")
        ax.set_title(f"{ds}: accuracy vs FLOPs ({view} view)")
    frontier = Line2D([], [], color="black", lw=1.3, ls=(0, (5, 2)), label="Pareto frontier")
    _legend(fig, colours, styles, [frontier])
    _save(fig, path)


def optimal_model_size(optimal: list[dict], view: str, path: Path) -> None:
    """The compute-optimal model size per FLOP budget (log-log) with the fitted line."""
    n = max(1, len(optimal))
    fig = Figure(figsize=(8 * n, 6), layout="constrained")
    axes = fig.subplots(1, n, squeeze=False)[0]
    for ax, part in zip(axes, optimal or [{}]):
        grid = pd.DataFrame(part.get("grid", []))
        ax.set_title(f"{part.get('dataset', '')}: compute-optimal model size ({view} view)")
        ax.set_xlabel(f"FLOP budget per problem ({view} view)")
        ax.set_ylabel("optimal model size N (parameters)")
        if grid.empty or grid["model_params"].isna().all():
            ax.text(
                0.5, 0.5, "no model sizes (records lack model_params)", ha="center", va="center", transform=ax.transAxes
            )
            continue
        grid = grid[grid["model_params"].notna()]
        steps = pd.DataFrame(part.get("steps", []))
        steps = steps[steps["model_params"].notna()] if not steps.empty else steps
        if not steps.empty:
            # Extend the last step to the largest budget observed.
            xs = list(steps["flops"]) + [part.get("flops_max", steps["flops"].max())]
            ys = list(steps["model_params"]) + [steps["model_params"].iloc[-1]]
            ax.step(xs, ys, where="post", color="tab:blue", lw=1.5, label="optimal model (exact, from the frontier)")
        ax.scatter(grid["flops_budget"], grid["model_params"], color="tab:blue", s=12, label="budget grid")
        ent = pd.DataFrame(part.get("entry_points", []))
        if not ent.empty:
            ax.scatter(
                ent["c_star"],
                ent["model_params"],
                color="tab:red",
                zorder=3,
                s=40,
                label="C*(N): first budget where N is optimal",
            )
            for _, r in ent.iterrows():
                ax.annotate(
                    r["model"], (r["c_star"], r["model_params"]), fontsize=8, xytext=(4, 4), textcoords="offset points"
                )
        fit = part.get("fit")
        if fit and fit["a"] != 0:
            c = np.logspace(np.log10(grid["flops_budget"].min()), np.log10(grid["flops_budget"].max()), 50)
            ax.plot(
                c,
                10 ** ((np.log10(c) - fit["b"]) / fit["a"]),
                color="tab:red",
                ls="--",
                label=f"fit: log10 C = {fit['a']:.2f} log10 N + {fit['b']:.2f}",
            )
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.grid(True, which="both", alpha=0.25)
        ax.legend(fontsize=9, loc="upper left")
    _save(fig, path)


def accuracy_by_level(levels: pd.DataFrame, table: pd.DataFrame, view: str, path: Path) -> None:
    """One panel per difficulty level: accuracy vs FLOPs with the same encodings as the main plot
    (taken from the curves `table`, so colours and markers match)."""
    col = f"flops_{view}"
    names = sorted(levels["level"].unique())
    ncols = min(3, len(names))
    nrows = int(np.ceil(len(names) / ncols))
    colours, styles = _encodings(table)
    fig = Figure(figsize=(5.5 * ncols, 4.2 * nrows + 1.5), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False, sharey=True).ravel()
    for ax, lev in zip(axes, names):
        _draw_curves(ax, levels[levels["level"] == lev], col, colours, styles, bands=False)
        ax.set_xscale("log")
        ax.set_ylim(-0.02, 1.02)
        ax.grid(True, which="both", alpha=0.25)
        ax.set_title(f"level {lev}")
        ax.set_xlabel(f"FLOPs ({view} view)")
        ax.set_ylabel("accuracy")
    for ax in axes[len(names) :]:
        ax.set_visible(False)
    fig.suptitle(f"Accuracy by difficulty level vs FLOPs ({view} view)")
    _legend(fig, colours, styles)
    _save(fig, path)
