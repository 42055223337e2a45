"""Tests of `rebase report` (eval/report.py and its parts) on synthetic records with known answers.

The synthetic run: models small (1e6 params) and large (4e6) x strategies majority, best_of_n,
rebase/weighted_majority x budgets 1..16 x seeds 0, 1 x problems p0..p9 (levels 1-3). Seed 0 solves
problems p0..p(k-1) with k = base(model) + bonus(strategy) + log2(budget), seed 1 one fewer, so
every accuracy is known; paper-view FLOPs are 2 N * 100 * budget, which makes the Pareto frontier
and the compute-optimal fit hand-checkable (see test_pareto_and_optimal_fit_by_hand).

Run: OMP_NUM_THREADS=1 .venv/bin/pytest -x -q tests/test_report.py
The HTML test needs Chromium (`apt-get update && apt-get install -y chromium`); it is skipped
only when /usr/bin/chromium is absent.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from eval import pareto, scaling
from eval.report import write_report
from rebase.errors import BadInput

ROOT = Path(__file__).resolve().parents[1]
PARAMS = {"small": 1e6, "large": 4e6}
BASE = {"small": 2, "large": 5}
STRATS = [("majority", "majority", 0), ("best_of_n", "best_of_n", 1), ("rebase", "weighted_majority", 2)]
BUDGETS = [1, 2, 4, 8, 16]
FAILED = ("small", "rebase", 16, 1, "p0")  # correct in truth, recorded as an error


def solved(model: str, bonus: int, budget: int, seed: int) -> int:
    return min(10, BASE[model] + bonus + int(math.log2(budget)) - seed)


def expected_accuracy(model: str, bonus: int, budget: int) -> float:
    k = [solved(model, bonus, budget, s) for s in (0, 1)]
    if (model, bonus, budget) == ("small", 2, 16):
        k[1] -= 1  # the failed record counts as wrong
    return sum(k) / 20


def make_records() -> list[dict]:
    recs = []
    for model, n in PARAMS.items():
        for strat, agg, bonus in STRATS:
            for b in BUDGETS:
                for seed in (0, 1):
                    k = solved(model, bonus, b, seed)
                    for i in range(10):
                        gen, prm = 100 * b, (0 if strat == "majority" else 120 * b)
                        err = "PRM returned NaN" if (model, strat, b, seed, f"p{i}") == FAILED else None
                        recs.append(
                            {
                                "model": model,
                                "dataset": "arith",
                                "problem_id": f"p{i}",
                                "strategy": strat,
                                "aggregator": agg,
                                "budget": b,
                                "seed": seed,
                                "model_params": n,
                                "level": 1 + i % 3,
                                "reduction": "last",
                                "answer": "1",
                                "gold": "1",
                                "correct": float(i < k),
                                "n_candidates": b,
                                "n_finished": b,
                                "n_truncated": 0,
                                "policy_prompt_tokens": 20,
                                "policy_cached_tokens": 0,
                                "policy_generated_tokens": gen,
                                "prm_tokens": prm,
                                "flops_paper": 2 * n * gen,
                                "flops_policy": 2.2 * n * gen,
                                "flops_total": 2.2 * n * gen + 4e6 * prm,
                                "wall_s": 0.01,
                                "subsets": 1,
                                "error": err,
                            }
                        )
    return recs


def write_run(tmp: Path, recs: list[dict], view: str | None = "paper", torn: bool = True) -> Path:
    run = tmp / "run"
    run.mkdir()
    lines = [json.dumps(r) for r in recs]
    # A resumed run re-appended one key: the first (wrong) copy must lose to the last.
    stale = dict(recs[0], correct=1.0 - recs[0]["correct"])
    lines.insert(0, json.dumps(stale))
    text = "\n".join(lines) + "\n"
    if torn:
        text += '{"model": "small", "dataset": "ar'  # killed mid-write
    (run / "results.jsonl").write_text(text)
    if view:
        (run / "config.json").write_text(json.dumps({"flops_view": view}))
    return run


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    run = write_run(tmp_path_factory.mktemp("rep"), make_records())
    with pytest.warns(UserWarning, match="does not parse"):
        summary = write_report(run)
    return run, summary


def test_summary_and_files(report):
    run, summary = report
    assert summary["flops_view"] == "paper"  # from config.json
    assert summary["records"] == 2 * 3 * 5 * 2 * 10
    assert summary["failures"] == 1 and summary["skipped_lines"] == 1
    for name in (
        "curves.csv",
        "pareto.csv",
        "levels.csv",
        "scaling_fit.json",
        "accuracy_vs_flops.png",
        "optimal_model_size.png",
        "accuracy_by_level.png",
        "index.html",
    ):
        path = run / "report" / name
        assert path.is_file() and path.stat().st_size > 200, name
        assert summary["files"][name] == str(path)
    json.dumps(summary)  # the CLI prints it as one JSON line
    best = {b["model"]: b for b in summary["best"]}
    assert best["large"]["accuracy"] == 1.0 and best["large"]["budget"] == 16


def test_curves_accuracy_and_ci(report):
    run, _ = report
    cur = pd.read_csv(run / "report" / "curves.csv")
    assert len(cur) == 2 * 3 * 5
    for model in PARAMS:
        for strat, agg, bonus in STRATS:
            for b in BUDGETS:
                row = cur[(cur.model == model) & (cur.strategy == strat) & (cur.budget == b)].iloc[0]
                assert row.aggregator == agg
                assert row.accuracy == pytest.approx(expected_accuracy(model, bonus, b))
                assert row.ci_low <= row.accuracy + 1e-12 <= row.ci_high + 2e-12
                assert row.n_problems == 10 and row.n_seeds == 2
                assert row.flops_paper == pytest.approx(2 * PARAMS[model] * 100 * b)
                assert row.generated_tokens == 100 * b
                assert row.n_failed == int((model, strat, b) == FAILED[:3])
    # A width check against the normal approximation: problems are the unit of resampling.
    row = cur[(cur.model == "small") & (cur.strategy == "majority") & (cur.budget == 4)].iloc[0]
    per_problem = np.array([1.0] * 3 + [0.5] + [0.0] * 6)  # k = 4 (seed 0) and 3 (seed 1)
    se = per_problem.std() / math.sqrt(10)
    assert 0.6 * 3.92 * se < row.ci_high - row.ci_low < 1.4 * 3.92 * se
    # Seeded: a second computation gives the same interval.
    from eval.curves import bootstrap_ci

    assert bootstrap_ci(per_problem, "k") == bootstrap_ci(per_problem, "k")


def test_pareto_and_optimal_fit_by_hand(report):
    run, _ = report
    fr = pd.read_csv(run / "report" / "pareto.csv")
    got = list(zip(fr.model, fr.strategy, fr.budget))
    assert got == [
        ("small", "rebase", 1),
        ("small", "rebase", 2),
        ("large", "rebase", 1),
        ("large", "rebase", 2),
        ("large", "rebase", 4),
        ("large", "rebase", 8),
        ("large", "rebase", 16),
    ]
    # Brute force over all points agrees.
    cur = pd.read_csv(run / "report" / "curves.csv")
    f, a = cur.flops_paper.to_numpy(), cur.accuracy.to_numpy()
    brute = [
        i
        for i in range(len(cur))
        if not any(f[j] <= f[i] and a[j] >= a[i] and (f[j] < f[i] or a[j] > a[i]) for j in range(len(cur)))
    ]
    assert sorted(zip(cur.flops_paper[brute], cur.accuracy[brute])) == list(zip(fr.flops_paper, fr.accuracy))
    fits = json.loads((run / "report" / "scaling_fit.json").read_text())
    opt = fits["compute_optimal"][0]
    cstar = {e["model"]: e["c_star"] for e in opt["entry_points"]}
    assert cstar == {"small": pytest.approx(2e8), "large": pytest.approx(8e8)}
    # log10 C* = a log10 N + b through (1e6, 2e8) and (4e6, 8e8): a = 1, b = log10(200).
    assert opt["fit"]["a"] == pytest.approx(1.0) and opt["fit"]["b"] == pytest.approx(math.log10(200))
    assert opt["grid"][0]["model"] == "small" and opt["grid"][-1]["model"] == "large"
    assert fits["failures"] == [
        {
            "model": "small",
            "dataset": "arith",
            "strategy": "rebase",
            "aggregator": "weighted_majority",
            "budget": 16,
            "seed": 1,
            "problem_id": "p0",
            "error": "PRM returned NaN",
        }
    ]
    assert len(fits["curve_fits"]) == 6
    assert {c["form"] for c in fits["curve_fits"]} <= {"saturating", "linear"}
    lev = pd.read_csv(run / "report" / "levels.csv")
    assert sorted(lev.level.unique()) == [1, 2, 3] and len(fits["levels"]) == len(lev)


def test_non_dominated_hand_case():
    f = np.array([1.0, 2.0, 2.0, 3.0, 4.0, 4.0, 0.5, 5.0])
    a = np.array([0.5, 0.4, 0.6, 0.6, 0.9, 0.9, 0.1, 0.85])
    # (2, .4) loses to (1, .5); (3, .6) to (2, .6); (5, .85) to (4, .9); the twin (4, .9)s both stay.
    assert pareto.non_dominated(f, a).tolist() == [True, False, True, False, True, True, True, False]


def test_fit_recovers_saturating_parameters():
    c = np.logspace(10, 14, 6)
    a, b, k = 0.8, 600.0, 0.3
    fit = scaling.fit_curve(c, a - b * c ** (-k))
    assert fit["form"] == "saturating"
    assert fit["a"] == pytest.approx(a, rel=1e-3) and fit["c"] == pytest.approx(k, rel=1e-3)
    assert fit["b"] == pytest.approx(b, rel=1e-2) and fit["r2"] > 0.9999 and fit["rmse"] < 1e-4
    lin = scaling.fit_curve(c[:3], 0.1 * np.log10(c[:3]) - 0.9)  # < 4 points: linear
    assert lin["form"] == "linear"
    assert lin["m"] == pytest.approx(0.1) and lin["k"] == pytest.approx(-0.9)
    flat = scaling.fit_curve(c, np.full(6, 0.5))
    assert flat["r2"] is None and flat["rmse"] < 1e-6


def test_bad_inputs(tmp_path):
    with pytest.raises(BadInput, match="results.jsonl"):
        write_report(tmp_path)
    run = write_run(tmp_path, make_records()[:5], view=None, torn=False)
    with pytest.raises(BadInput, match="unknown flops view"):
        write_report(run, "bogus")
    (run / "results.jsonl").write_text('{"model": "x"}\n')
    with pytest.raises(BadInput, match="lacks"):
        write_report(run)


def test_total_view_without_torch(tmp_path):
    """The report runs from records alone: no torch import, default view `total` without config."""
    run = write_run(tmp_path, make_records(), view=None, torn=False)
    code = (
        "import sys, warnings; from pathlib import Path; from eval.report import write_report; "
        f"s = write_report(Path({str(run)!r})); "
        "assert 'torch' not in sys.modules and 'transformers' not in sys.modules, 'heavy import'; "
        "print(s['flops_view'])"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "total"
    fr = pd.read_csv(run / "report" / "pareto.csv")
    assert "flops_total" in fr.columns and fr.flops_total.is_monotonic_increasing


@pytest.mark.browser
def test_html_renders_in_chromium(report, tmp_path):
    chromium = Path("/usr/bin/chromium")
    if not chromium.exists():
        pytest.skip("/usr/bin/chromium absent (install: apt-get update && apt-get install -y chromium)")
    import matplotlib.image as mpimg

    run, _ = report
    page = run / "report" / "index.html"
    text = page.read_text()
    assert 'src="accuracy_vs_flops.png"' in text and "<table" in text and "PRM returned NaN" in text
    shot = tmp_path / "shot.png"
    cmd = [
        str(chromium),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={tmp_path / 'profile'}",
        f"--screenshot={shot}",
        "--window-size=1280,2000",
        page.resolve().as_uri(),
    ]
    subprocess.run(cmd, capture_output=True, timeout=90)
    assert shot.is_file() and shot.stat().st_size > 20_000
    img = mpimg.imread(shot)
    assert img.shape[0] >= 1000 and img.shape[1] >= 1000
    assert len(np.unique(img.reshape(-1, img.shape[-1]), axis=0)) > 50  # text, tables, plots


def test_two_datasets_without_levels_or_sizes(tmp_path):
    """Optional fields absent (no level, no model_params) and two datasets: one frontier each,
    no levels.csv, and the optimal-size fit is skipped with a reason."""
    recs = []
    for ds, shift in (("gsm8k", 0), ("math500", 1)):
        for b in (1, 4):
            for i in range(4):
                recs.append(
                    {
                        "model": "m",
                        "dataset": ds,
                        "problem_id": f"q{i}",
                        "strategy": "majority",
                        "aggregator": "majority",
                        "budget": b,
                        "seed": 0,
                        "correct": i < b - shift,
                        "flops_paper": 10.0 * b,
                        "flops_policy": 11.0 * b,
                        "flops_total": 11.0 * b,
                        "policy_generated_tokens": b,
                        "prm_tokens": 0,
                    }
                )
    run = tmp_path / "r"
    run.mkdir()
    (run / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs))
    summary = write_report(run, "policy")
    assert "levels.csv" not in summary["files"] and "accuracy_by_level.png" not in summary["files"]
    fr = pd.read_csv(run / "report" / "pareto.csv")
    assert sorted(fr.dataset.unique()) == ["gsm8k", "math500"] and len(fr) == 4
    cur = pd.read_csv(run / "report" / "curves.csv").set_index(["dataset", "budget"])
    assert cur.loc[("math500", 4), "accuracy"] == 0.75 and cur.loc[("gsm8k", 1), "accuracy"] == 0.25
    fits = json.loads((run / "report" / "scaling_fit.json").read_text())
    assert all(p["fit"] is None and "fewer than 2" in p["note"] for p in fits["compute_optimal"])
    assert {c["form"] for c in fits["curve_fits"]} == {"linear"}  # 2 budgets only
