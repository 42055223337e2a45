"""compute_optimal.png of `rebase report`: per dataset, the best accuracy reachable at each FLOP
budget (one configuration everywhere vs one per difficulty level, and each level's own best), and,
when the sweep ran adaptive budgets, the adaptive curves next to the fixed-N curves they stop early.

How: `plot_compute_optimal(rows, gains, view, path)` with the outputs of eval.compute_optimal and
eval.adaptive_gain. Uses a Figure object (no pyplot state), like eval/plots.py.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from matplotlib import colormaps
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure


def _steps(x: pd.Series, y: pd.Series) -> tuple[list, list]:
    """A post-step line whose last level is drawn too (to a quarter decade past the last budget)."""
    xs, ys = list(x), list(y)
    return (xs + [xs[-1] * 10**0.25], ys + [ys[-1]]) if xs else (xs, ys)


def _budget_panel(ax, rows: pd.DataFrame, view: str, dataset: str) -> None:
    overall = rows[rows["table"] == "overall"]
    alloc = rows[rows["table"] == "allocation"]
    levels = rows[rows["table"] == "level"]
    cmap = colormaps["viridis"]
    names = sorted(levels["level"].dropna().unique(), key=str)
    for i, lvl in enumerate(names):
        g = levels[levels["level"] == lvl]
        ax.step(
            *_steps(g["flop_budget"], g["accuracy"]),
            where="post",
            lw=1,
            alpha=0.7,
            color=cmap(i / max(1, len(names) - 1)),
            label=f"level {lvl}: its best configuration",
        )
    lo_x, lo = _steps(overall["flop_budget"], overall["ci_low"])
    ax.fill_between(
        lo_x, lo, _steps(overall["flop_budget"], overall["ci_high"])[1], step="post", color="black", alpha=0.08, lw=0
    )
    ax.step(
        *_steps(overall["flop_budget"], overall["accuracy"]),
        where="post",
        color="black",
        lw=2,
        label="best single configuration (95% CI)",
    )
    ax.step(
        *_steps(alloc["flop_budget"], alloc["accuracy"]),
        where="post",
        color="tab:red",
        lw=2,
        ls="--",
        label="per-level allocation (same average cost)",
    )
    ax.set_xscale("log")
    ax.set_ylim(-0.02, 1.02)
    ax.grid(True, which="both", alpha=0.25)
    source = overall["level_source"].iloc[0] if not overall.empty else ""
    ax.set_title(f"{dataset}: best accuracy per FLOP budget\nlevels: {source}", fontsize=10)
    ax.set_xlabel(f"FLOP budget per problem ({view} view)")
    ax.set_ylabel("accuracy")
    ax.legend(fontsize=8, loc="lower right")


def _adaptive_panel(ax, gains: list[dict], view: str, dataset: str) -> None:
    cmap = colormaps["tab10"]
    for i, g in enumerate(gains):
        colour = cmap(i % 10)
        pts = pd.DataFrame(g["points"])
        if not pts.empty:
            ax.plot(
                pts["flops"],
                pts["accuracy"],
                marker="o",
                color=colour,
                lw=1.8,
                label=f"{g['model']} {g['strategy']} (max budget)",
            )
            for _, r in pts.iterrows():
                ax.annotate(
                    f"{r['mean_samples']:.1f}",
                    (r["flops"], r["accuracy"]),
                    fontsize=7,
                    xytext=(3, -9),
                    textcoords="offset points",
                    color=colour,
                )
        fixed = pd.DataFrame(g.get("fixed_points", []))
        if not fixed.empty:
            ax.plot(
                fixed["flops"],
                fixed["accuracy"],
                marker="s",
                ms=4,
                color=colour,
                lw=1.2,
                ls="--",
                label=f"{g['model']} {g['fixed_strategy']} (fixed N)",
            )
    ax.set_xscale("log")
    ax.set_ylim(-0.02, 1.02)
    ax.grid(True, which="both", alpha=0.25)
    ax.set_title(f"{dataset}: adaptive budgets vs fixed-N voting\n(numbers: mean samples used)", fontsize=10)
    ax.set_xlabel(f"mean FLOPs per problem ({view} view)")
    ax.set_ylabel("accuracy")
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5))  # outside: the curves stay visible


def plot_compute_optimal(rows: pd.DataFrame, gains: list[dict], view: str, path: Path) -> None:
    datasets = sorted(rows["dataset"].unique()) or [""]
    with_adaptive = bool(gains)
    fig = Figure(
        figsize=(7.5 * (2 if with_adaptive else 1) + (3 if with_adaptive else 0), 5.5 * len(datasets)),
        layout="constrained",
    )
    axes = fig.subplots(len(datasets), 2 if with_adaptive else 1, squeeze=False)
    for row_axes, ds in zip(axes, datasets):
        _budget_panel(row_axes[0], rows[rows["dataset"] == ds], view, ds)
        if with_adaptive:
            _adaptive_panel(row_axes[1], [g for g in gains if g["dataset"] == ds], view, ds)
    FigureCanvasAgg(fig)
    fig.savefig(path, dpi=110)
