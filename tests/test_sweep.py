"""A real sweep: two tiny local models of different sizes x greedy + majority + best_of_n +
weighted_majority at budgets 1..16 x two seeds x 10 GSM8K rows, then `rebase report`.

Also checks sample reuse with the ledger: the whole N-sample part of the sweep generates no more
than 1.1x what its largest budget alone needs, and resuming computes nothing again.
"""

from __future__ import annotations

import json

import pytest
import yaml

from rebase.cli import main

pytestmark = pytest.mark.slow


def generated_tokens(run_dir) -> int:
    """Every generated token sits in exactly one tree node: the sweep's true generation cost."""
    total = 0
    for f in (run_dir / "trees").glob("*/*.jsonl"):
        for line in f.read_text().splitlines():
            n = json.loads(line)
            total += len(n["token_ids"]) if n["depth"] > 0 else 0
    return total


@pytest.fixture(scope="module")
def big_model(tiny_dir, tmp_path_factory):
    from tiny_models import build_model

    return build_model(
        tmp_path_factory.mktemp("big") / "llama-big",
        tiny_dir / "tok",
        "llama",
        hidden=256,
        layers=3,
        heads=4,
        kv_heads=2,
        intermediate=512,
        seed=5,
    )


def sweep_config(tiny_dir, data_dir, big_model, strategies):
    return {
        "models": [{"name": "tiny-s", "path": str(tiny_dir / "llama")}, {"name": "tiny-l", "path": str(big_model)}],
        "prm": {"family": "step_tag", "path": str(tiny_dir / "prm_llama"), "tag": " ки", "good": "+", "bad": "-"},
        "dataset": {"name": "gsm8k", "path": str(data_dir / "gsm8k" / "test.jsonl"), "limit": 10},
        "strategies": strategies,
        "seeds": [0, 1],
        "sampling": {"max_tokens": 16, "max_step_tokens": 8},
        "batch_problems": 10,
    }


def test_two_model_sweep_reuse_resume_and_report(tmp_path, tiny_dir, data_dir, big_model, capsys):
    budgets = [1, 2, 4, 8, 16]
    full = sweep_config(
        tiny_dir,
        data_dir,
        big_model,
        [{"name": "greedy", "budgets": [1]}]
        + [{"name": n, "budgets": budgets} for n in ("majority", "best_of_n", "weighted_majority")],
    )
    p = tmp_path / "sweep.yaml"
    p.write_text(yaml.safe_dump(full))
    out = tmp_path / "sweep"
    assert main(["sweep", str(p), "--out", str(out), "--no-progress"]) == 0
    recs = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert len(recs) == 2 * 10 * 2 * (1 + 3 * len(budgets))
    sizes = {r["model"]: r["model_params"] for r in recs}
    assert sizes["tiny-l"] > 3 * sizes["tiny-s"]
    # resume: nothing is computed twice
    capsys.readouterr()
    assert main(["sweep", str(p), "--out", str(out), "--no-progress"]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["new_records"] == 0

    # sample reuse, measured: N-sample part of the sweep vs its largest budget alone
    only16 = sweep_config(tiny_dir, data_dir, big_model, [{"name": "majority", "budgets": [16]}])
    q = tmp_path / "only16.yaml"
    q.write_text(yaml.safe_dump(only16))
    assert main(["sweep", str(q), "--out", str(tmp_path / "only16"), "--no-progress"]) == 0
    pools = sum(
        len(json.loads(line)["token_ids"])
        for f in (out / "trees").glob("*/pool-*.jsonl")
        for line in f.read_text().splitlines()
        if json.loads(line)["depth"] > 0
    )
    alone = generated_tokens(tmp_path / "only16")
    assert 0 < pools <= 1.1 * alone, (pools, alone)

    assert main(["report", str(out)]) == 0
    rep = out / "report"
    for name in (
        "curves.csv",
        "pareto.csv",
        "scaling_fit.json",
        "accuracy_vs_flops.png",
        "optimal_model_size.png",
        "index.html",
    ):
        assert (rep / name).stat().st_size > 0, name
    import pandas as pd

    curves = pd.read_csv(rep / "curves.csv")
    assert len(curves) == 2 * (1 + 3 * len(budgets))
    fit = json.loads((rep / "scaling_fit.json").read_text())
    assert fit  # fits per model x strategy are present
