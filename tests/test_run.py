"""End to end: `rebase run` on a tiny local transformers model and 20 GSM8K rows.

Checks the record contract, that budget 16 generates ~16x the tokens of budget 1 with FLOPs
following, that a seeded run repeats exactly (except wall_s), and the CLI's exit codes and summary.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import yaml

from eval.records import FIELDS
from rebase.cli import main


def config(tiny_dir, data_dir, **extra):
    cfg = {
        "models": [{"name": "tiny-llama", "path": str(tiny_dir / "llama")}],
        "prm": {"family": "step_tag", "path": str(tiny_dir / "prm_llama"), "tag": " ки", "good": "+", "bad": "-"},
        "dataset": {"name": "gsm8k", "path": str(data_dir / "gsm8k" / "test.jsonl"), "limit": 20},
        "strategies": [{"name": "greedy", "budgets": [1]}]
        + [{"name": n, "budgets": [1, 4, 16]} for n in ("majority", "best_of_n", "weighted_majority")],
        "sampling": {"max_tokens": 24, "max_step_tokens": 12, "temperature": 1.0},
        "batch_problems": 10,
    }
    cfg.update(extra)
    return cfg


def run(tmp_path, cfg, name="out", cmd="run"):
    p = tmp_path / f"{name}.yaml"
    p.write_text(yaml.safe_dump(cfg))
    code = main([cmd, str(p), "--out", str(tmp_path / name), "--no-progress"])
    recs = [json.loads(line) for line in (tmp_path / name / "results.jsonl").read_text().splitlines()]
    return code, recs


def strip(recs):
    return sorted(json.dumps({k: v for k, v in r.items() if k != "wall_s"}, sort_keys=True) for r in recs)


def test_run_records_scale_and_repeat(tmp_path, tiny_dir, data_dir, capsys):
    code, recs = run(tmp_path, config(tiny_dir, data_dir))
    assert code == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["records"] == len(recs) == 20 * (1 + 3 * 3)
    for r in recs:
        assert set(FIELDS) <= set(r), set(FIELDS) - set(r)
        assert r["error"] is None and r["gold"] and r["n_candidates"] == r["budget"]
        assert r["policy_generated_tokens"] > 0 and r["flops_total"] >= r["flops_policy"] > 0
    by = {}
    for r in recs:
        by.setdefault((r["strategy"], r["budget"]), []).append(r)
    for s in ("majority", "best_of_n", "weighted_majority"):
        t1 = sum(r["policy_generated_tokens"] for r in by[(s, 1)])
        t16 = sum(r["policy_generated_tokens"] for r in by[(s, 16)])
        p1 = sum(r["flops_paper"] for r in by[(s, 1)])
        p16 = sum(r["flops_paper"] for r in by[(s, 16)])
        f1 = sum(r["flops_policy"] for r in by[(s, 1)])
        f16 = sum(r["flops_policy"] for r in by[(s, 16)])
        assert 14 <= t16 / t1 <= 18, (s, t16 / t1)
        assert p16 / p1 == pytest.approx(t16 / t1)  # the paper view prices generated tokens only
        # the policy view also prices the prompt, prefilled once per request: it grows more slowly
        assert 1.5 < f16 / f1 < t16 / t1, (s, f16 / f1)
    assert all(r["prm_tokens"] == 0 for r in by[("majority", 16)])
    assert sum(r["prm_tokens"] for r in by[("weighted_majority", 16)]) > 0
    code2, recs2 = run(tmp_path, config(tiny_dir, data_dir), name="again")
    assert strip(recs) == strip(recs2)


def test_run_without_sample_reuse_generates_independently(tmp_path, tiny_dir, data_dir):
    cfg = config(tiny_dir, data_dir, sample_reuse=False)
    cfg["dataset"]["limit"] = 3
    cfg["strategies"] = [{"name": "majority", "budgets": [1, 4]}]
    code, recs = run(tmp_path, cfg)
    assert code == 0 and len(recs) == 6
    assert {r["subsets"] for r in recs} == {1}
    assert sum(r["policy_generated_tokens"] for r in recs if r["budget"] == 4) > sum(
        r["policy_generated_tokens"] for r in recs if r["budget"] == 1
    )


def test_run_refuses_existing_results_and_bad_config(tmp_path, tiny_dir, data_dir, capsys):
    cfg = config(tiny_dir, data_dir)
    cfg["dataset"]["limit"] = 1
    cfg["strategies"] = [{"name": "greedy", "budgets": [1]}]
    assert run(tmp_path, cfg)[0] == 0
    p = tmp_path / "out.yaml"
    assert main(["run", str(p), "--out", str(tmp_path / "out")]) == 2
    assert "already holds results" in capsys.readouterr().err
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(dict(cfg, strategies=[{"name": "beam", "budgets": [2]}])))
    out = subprocess.run(
        [sys.executable, "-m", "rebase.cli", "run", str(bad), "--out", str(tmp_path / "nope")],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 2 and "unknown strategy 'beam'" in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1 and not (tmp_path / "nope").exists()
