"""Compute-optimal tables on synthetic records whose optimum is known by construction.

40 problems, levels 1 (easy) and 2 (hard), 20 each, two seeds. Configurations (cost per problem):
- A  m-small/majority@1       cost 1:  solves every easy problem, no hard one      -> 0.5
- C  m-small/majority@4       cost 4:  solves half of each level                   -> 0.5
- B  m-large/weighted@16      cost 10: solves everything                           -> 1.0
- D  m-large/greedy@1, on only half of the problems                                -> left out
So the best single configuration is A below cost 10 and B from 10 on; the per-level allocation
(easy: A, hard: B) reaches 1.0 at an average cost of (1 + 10) / 2 = 5.5, a FLOP ratio of 10 / 5.5.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from eval.compute_optimal import allocation_front, budget_grid, compute_optimal, pareto_front
from eval.difficulty import assign_levels
from eval.report import write_report

A = ("m-small", "majority", "majority", 1)
C = ("m-small", "majority", "majority", 4)
B = ("m-large", "weighted_majority", "weighted_majority", 16)
D = ("m-large", "greedy", "majority", 1)


def solves(cfg, i):
    easy = i < 20
    if cfg == A:
        return easy
    if cfg == C:
        return i % 2 == 0
    return True


def records(with_levels=True):
    rows = []
    for cfg, cost in ((A, 1.0), (C, 4.0), (B, 10.0), (D, 2.0)):
        for i in range(40):
            if cfg == D and i % 2:
                continue
            for seed in (0, 1):
                rows.append(
                    dict(
                        zip(("model", "strategy", "aggregator", "budget"), cfg),
                        dataset="synth",
                        problem_id=f"q{i}",
                        seed=seed,
                        correct=float(solves(cfg, i)),
                        level=(1 if i < 20 else 2) if with_levels else None,
                        flops_paper=cost,
                        flops_policy=cost,
                        flops_total=cost * 1.5,
                        model_params=1e6 if cfg[0] == "m-small" else 1e7,
                        policy_generated_tokens=10.0,
                        prm_tokens=0.0,
                        wall_s=0.1,
                        error=None,
                    )
                )
    return pd.DataFrame(rows)


def test_grid_and_fronts():
    assert np.allclose(budget_grid(np.array([1.0, 10.0])), 10 ** (np.arange(0, 5) / 4))
    assert np.allclose(budget_grid(np.array([2.0, 3.0])), [10**0.5])
    pts = [(1, 0.5, "a"), (4, 0.5, "c"), (10, 1.0, "b"), (2, 0.2, "x")]
    assert [p[2] for p in pareto_front(pts)] == ["a", "b"]


def test_overall_level_and_allocation_tables():
    table, summaries = compute_optimal(records(), "policy")
    s = summaries[0]
    assert s["configurations"] == 3 and s["configurations_left_out"] == 1 and s["problems"] == 40
    assert s["level_source"] == "dataset levels" and s["levels"] == {"1": 20, "2": 20}
    overall = table[table["table"] == "overall"]
    assert overall["flop_budget"].tolist() == pytest.approx(list(10 ** (np.arange(0, 5) / 4)))
    assert overall["strategy"].tolist() == ["majority"] * 4 + ["weighted_majority"]
    assert overall["budget"].astype(int).tolist() == [1, 1, 1, 1, 16]  # A beats C at equal accuracy: cheaper
    assert overall["accuracy"].tolist() == [0.5] * 4 + [1.0]
    assert (overall["ci_low"] <= overall["accuracy"]).all() and (overall["accuracy"] <= overall["ci_high"]).all()
    assert overall["ci_low"].iloc[-1] == overall["ci_high"].iloc[-1] == 1.0

    hard = table[(table["table"] == "level") & (table["level"] == 2)]
    # hard problems: A solves none, C half (cost 4), B all (cost 10)
    assert hard["accuracy"].tolist() == [0.0, 0.0, 0.0, 0.5, 1.0]
    assert hard["budget"].astype(int).tolist() == [1, 1, 1, 4, 16]
    easy = table[(table["table"] == "level") & (table["level"] == 1)]
    assert easy["accuracy"].tolist() == [1.0] * 5 and set(easy["budget"].astype(int)) == {1}

    alloc = table[table["table"] == "allocation"].reset_index(drop=True)
    # from 10^(3/4) = 5.6 >= 5.5 on, easy problems run A and hard ones B: everything solved
    assert alloc["accuracy"].tolist() == [0.5, 0.5, 0.75, 1.0, 1.0]
    assert alloc.loc[3, "mean_flops"] == pytest.approx(5.5)
    assert (
        alloc.loc[3, "configuration"]
        == "L1: m-small/majority/majority/1; L2: m-large/weighted_majority/weighted_majority/16"
    )
    assert alloc.loc[4, "flops_ratio"] == pytest.approx(10 / 5.5)
    assert alloc.loc[0, "flops_ratio"] == pytest.approx(1.0)
    assert (alloc["flops_ratio"] >= 1 - 1e-9).all()
    assert s["allocation_at_equal_accuracy"]["flops_ratio"] == pytest.approx(10 / 5.5)
    assert s["best_single"]["strategy"] == "weighted_majority" and s["best_single"]["accuracy"] == 1.0
    # held out (halves alternate over each level's ids sorted as text): on the half where C solves
    # every hard problem, C and "easy: A, hard: C" are chosen and fail the other half's hard ones;
    # on the other half B and "easy: A, hard: B" are chosen and solve everything
    h = s["allocation_held_out"]
    assert (h["single_accuracy"], h["single_flops"]) == pytest.approx((0.5, 7.0))
    assert (h["allocation_accuracy"], h["allocation_flops"]) == pytest.approx((0.75, 4.0))
    assert h["flops_ratio"] == pytest.approx(7.0 / 4.0)
    # the FLOP view is the one asked for
    total, _ = compute_optimal(records(), "total")
    assert total[total["table"] == "allocation"]["mean_flops"].max() == pytest.approx(5.5 * 1.5)


def test_allocation_front_is_exact_against_brute_force():
    rng = np.random.default_rng(0)
    ids = [f"p{i}" for i in range(30)]
    levels = pd.Series([1] * 12 + [2] * 10 + [3] * 8, index=ids)
    cfgs = [f"c{j}" for j in range(6)]
    acc = pd.DataFrame(rng.integers(0, 2, size=(30, 6)).astype(float), index=ids, columns=cfgs)
    cost = pd.DataFrame(rng.uniform(1, 50, size=(30, 6)), index=ids, columns=cfgs)
    front = allocation_front(acc, cost, levels)
    import itertools

    brute = []
    for choice in itertools.product(cfgs, repeat=3):
        pick = dict(zip((1, 2, 3), choice))
        per = [pick[levels[p]] for p in ids]
        brute.append(
            (
                float(np.mean([cost.at[p, c] for p, c in zip(ids, per)])),
                float(np.mean([acc.at[p, c] for p, c in zip(ids, per)])),
            )
        )
    for budget in (5, 10, 20, 30, 60):
        best_brute = max((a for c, a in brute if c <= budget), default=None)
        fit = [pt for pt in front if pt[0] <= budget]
        assert (fit[-1][1] if fit else None) == pytest.approx(best_brute)


def test_estimated_difficulty_bins_without_levels():
    df = records(with_levels=False)
    levels, source = assign_levels(df, pd.Index([f"q{i}" for i in range(40)]))
    assert source.startswith("estimated") and "budget-1" in source
    # A (budget 1) solves the easy half, D (budget 1) every even one: easy 1, hard even 0.5, hard odd 0
    assert (levels["q0"], levels["q1"], levels["q20"], levels["q21"]) == (1, 1, 2, 3)
    table, summaries = compute_optimal(df, "policy")
    assert summaries[0]["level_source"] == source
    assert set(table.loc[table["table"] == "level", "level"]) == {1, 2, 3}


def test_report_writes_the_table_plot_and_page(tmp_path):
    recs = records()
    with (tmp_path / "results.jsonl").open("w") as fh:
        for r in recs.to_dict("records"):
            fh.write(json.dumps(r) + "\n")
    summary = write_report(tmp_path, "policy")
    out = tmp_path / "report"
    table = pd.read_csv(out / "compute_optimal.csv")
    assert set(table["table"]) == {"overall", "level", "allocation"}
    assert (out / "compute_optimal.png").stat().st_size > 1000
    page = (out / "index.html").read_text()
    assert "Compute-optimal configuration per FLOP budget" in page and "compute_optimal.png" in page
    info = json.loads((out / "compute_optimal.json").read_text())
    assert info["datasets"][0]["allocation_at_equal_accuracy"]["flops_ratio"] == pytest.approx(10 / 5.5)
    assert summary["compute_optimal"][0]["allocation_flops_ratio"] == pytest.approx(10 / 5.5, rel=1e-3)


def adaptive_records():
    """Fixed weighted majority at N = 1, 4, 16, 64 (accuracy .40 .50 .55 .60, cost = N) and its
    adaptive version at maxima 8, 16, 32, 64 (accuracy .50 .58 .60 .61, cost 3 5 7 8)."""
    rows = []
    fixed = {1: (0.40, 1.0), 4: (0.50, 4.0), 16: (0.55, 16.0), 64: (0.60, 64.0)}
    adaptive = {8: (0.50, 3.0), 16: (0.58, 5.0), 32: (0.60, 7.0), 64: (0.61, 8.0)}
    for strategy, points, extra in (
        ("weighted_majority", fixed, {}),
        ("adaptive_weighted_majority", adaptive, {"adapts": "weighted_majority"}),
    ):
        for budget, (acc, cost) in points.items():
            for i in range(100):
                rows.append(
                    {
                        "model": "m",
                        "strategy": strategy,
                        "aggregator": "weighted_majority",
                        "budget": budget,
                        "dataset": "synth",
                        "problem_id": f"q{i}",
                        "seed": 0,
                        "correct": float(i < round(acc * 100)),
                        "level": 1 + i % 2,
                        "flops_paper": cost,
                        "flops_policy": cost,
                        "flops_total": cost,
                        "model_params": 1e6,
                        "policy_generated_tokens": 1.0,
                        "prm_tokens": 0.0,
                        "wall_s": 0.0,
                        "error": None,
                        "samples_used": min(budget, cost) if extra else None,
                        **extra,
                    }
                )
    return pd.DataFrame(rows)


def test_adaptive_against_fixed_n():
    from eval.adaptive_gain import adaptive_vs_fixed
    from eval.curves import accuracy_curves

    df = adaptive_records()
    gains = adaptive_vs_fixed(accuracy_curves(df), df, "total")
    assert len(gains) == 1
    g = gains[0]
    assert g["fixed_strategy"] == "weighted_majority" and g["fixed_best"]["budget"] == 64
    assert g["reaches_fixed_best"] and g["adaptive_at_fixed_best"]["budget"] == 32
    assert g["flops_ratio"] == pytest.approx(64 / 7)
    assert g["adaptive_best"]["accuracy"] == pytest.approx(0.61) and g["ratio_at_adaptive_best"] is None
    assert [p["mean_samples"] for p in g["points"]] == [3.0, 5.0, 7.0, 8.0]
    assert [p["budget"] for p in g["fixed_points"]] == [1, 4, 16, 64]
    assert [p["fixed_flops_ratio"] for p in g["points"]] == [None, 16 / 5, None, 64 / 8]
    assert g["points"][3]["fixed_accuracy"] == pytest.approx(0.60)
    # no adaptive records, no comparison
    plain = df[df["strategy"] == "weighted_majority"].drop(columns=["adapts", "samples_used"])
    assert adaptive_vs_fixed(accuracy_curves(plain), plain, "total") == []


def test_report_shows_adaptive_next_to_fixed(tmp_path):
    with (tmp_path / "results.jsonl").open("w") as fh:
        for r in adaptive_records().to_dict("records"):
            fh.write(json.dumps({k: v for k, v in r.items() if v is not None and v == v}) + "\n")
    summary = write_report(tmp_path, "total")
    info = json.loads((tmp_path / "report" / "compute_optimal.json").read_text())
    assert info["adaptive"][0]["flops_ratio"] == pytest.approx(64 / 7)
    assert any(
        h.get("adaptive") == "adaptive_weighted_majority" and h["flops_ratio"] == pytest.approx(64 / 7, rel=1e-3)
        for h in summary["compute_optimal"]
    )
    assert "Adaptive budgets vs fixed-N voting" in (tmp_path / "report" / "index.html").read_text()
