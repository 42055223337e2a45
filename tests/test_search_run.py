"""DVTS, particle filtering, beam search with lookahead and REBASE with `step_tokens` end to end
through `rebase run`, on the shipped demo policy (arith-m) and demo step PRM over 6 arith problems:
records, FLOPs, trees on disk, budget exactness, and `rebase replay` recovering the same answers
from the saved trees."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import yaml

from rebase.cli import main

pytestmark = pytest.mark.slow  # real models through the CLI: ~30 s of CPU

BASE = {
    "models": [{"name": "arith-m", "path": "package:rebase.demo/models/arith-m"}],
    "prm": {
        "family": "step_tag",
        "path": "package:rebase.demo/models/arith-prm",
        "tag": " ки",
        "good": "+",
        "bad": "-",
    },
    "dataset": {"name": "arith", "size": 6, "seed": 3},
    "sampling": {"temperature": 0.7, "max_step_tokens": 24, "max_tokens": 96, "max_depth": 8},
    "batch_problems": 6,
}


def _run(tmp_path, name, **extra):
    cfg = json.loads(json.dumps(BASE)) | extra
    p = tmp_path / f"{name}.yaml"
    p.write_text(yaml.safe_dump(cfg))
    out = tmp_path / name
    assert main(["run", str(p), "--out", str(out), "--no-progress"]) == 0
    recs = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert recs and all(r["error"] is None for r in recs)
    return out, recs


def _trees(out, label):
    return [json.loads(line) for line in (out / "trees" / "arith-m" / f"{label}.jsonl").read_text().splitlines()]


def test_new_strategies_run_write_trees_and_replay(tmp_path):
    out, recs = _run(
        tmp_path,
        "search",
        strategies=[
            {"name": "dvts", "budgets": [8], "beam_width": 4},
            {"name": "particle_filtering", "budgets": [8], "resampling": "systematic"},
            {"name": "beam_search", "budgets": [8], "lookahead": 1},
        ],
    )
    assert len(recs) == 3 * 6
    by = {s: [r for r in recs if r["strategy"] == s] for s in ("dvts", "particle_filtering", "beam_search")}
    for s, rs in by.items():
        assert len(rs) == 6 and all(r["aggregator"] == "weighted_majority" for r in rs)
        # >=: the PRM's store of scored sequences makes a path another unit already scored free
        assert all(r["prm_tokens"] > 0 and r["flops_total"] >= r["flops_policy"] > 0 for r in rs)
    for r in by["particle_filtering"] + by["beam_search"]:
        assert r["n_candidates"] == 8 == r["n_finished"] + r["n_truncated"]  # exactly N final particles / beams
    assert all(r["n_candidates"] >= 2 for r in by["dvts"])  # at least the two subtrees' kept paths
    # lookahead's rollouts are charged: more policy tokens than the tree itself holds
    for r in by["beam_search"]:
        pid = r["problem_id"]
        tree_tokens = sum(
            len(n["token_ids"]) for n in _trees(out, "beam_search-b8-s0") if n["problem_id"] == pid and n["depth"] > 0
        )
        assert r["policy_generated_tokens"] > tree_tokens
    for label in ("dvts-b8-s0", "particle_filtering-b8-s0", "beam_search-b8-s0"):
        nodes = _trees(out, label)
        assert {n["problem_id"] for n in nodes} == {r["problem_id"] for r in recs}
        assert all(len(n["step_scores"]) <= n["depth"] for n in nodes)  # a blank completion is not a step
        assert sum(len(n["step_scores"]) == n["depth"] for n in nodes) > len(nodes) // 2
        assert all(n["allocation"] == 8 for n in nodes if n["depth"] == 0)
    # replay rebuilds the same candidates from the trees: same accuracy as the records
    assert main(["replay", str(out), "--aggregator", "weighted_majority", "--reduction", "last"]) == 0
    table = pd.read_csv(out / "replay.csv").set_index("unit")["accuracy"]
    for s, label in (
        ("dvts", "dvts-b8-s0"),
        ("particle_filtering", "particle_filtering-b8-s0"),
        ("beam_search", "beam_search-b8-s0"),
    ):
        assert table[label] == sum(r["correct"] for r in by[s]) / 6


def test_rebase_with_step_tokens(tmp_path):
    base_sampling = dict(BASE["sampling"], step_tokens=6)
    out, recs = _run(tmp_path, "tokens", sampling=base_sampling, strategies=[{"name": "rebase", "budgets": [4]}])
    assert len(recs) == 6
    for r in recs:
        assert r["n_candidates"] == 4 == r["n_finished"] + r["n_truncated"]
    nodes = _trees(out, "rebase-b4-s0")
    steps = [n for n in nodes if n["depth"] > 0]
    # every step is a 6-token cut, except one that ends on EOS or the token cap
    assert all(len(n["token_ids"]) == 6 for n in steps if n["finish_reason"] == "length" and not n["truncated"])
    assert any("\n" in n["text"] for n in steps)  # cuts run across the model's own line breaks
    finished = [n for n in steps if n["finished"]]
    assert finished and sum(r["n_finished"] for r in recs) == len(finished)
    assert any(r["answer"] is not None for r in recs)
