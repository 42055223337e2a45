"""Tree search end to end through `rebase run`: REBASE (budgets 4, 8, 16) and MCTS (budget 8) with a
tiny local policy and a tiny step_tag PRM on 10 GSM8K rows: records, trees, budget exactness."""

from __future__ import annotations

import json

import yaml

from rebase.cli import main


def test_rebase_and_mcts_run_write_records_and_trees(tmp_path, tiny_dir, data_dir):
    cfg = {
        "models": [{"name": "tiny", "path": str(tiny_dir / "llama")}],
        "prm": {"family": "step_tag", "path": str(tiny_dir / "prm_llama"), "tag": " ки", "good": "+", "bad": "-"},
        "dataset": {"name": "gsm8k", "path": str(data_dir / "gsm8k" / "test.jsonl"), "limit": 10},
        "strategies": [{"name": "rebase", "budgets": [4, 8, 16]}, {"name": "mcts", "budgets": [8]}],
        "sampling": {"max_tokens": 24, "max_step_tokens": 8, "max_depth": 4},
        "batch_problems": 10,
    }
    p = tmp_path / "tree.yaml"
    p.write_text(yaml.safe_dump(cfg))
    assert main(["run", str(p), "--out", str(tmp_path / "out"), "--no-progress"]) == 0
    recs = [json.loads(line) for line in (tmp_path / "out" / "results.jsonl").read_text().splitlines()]
    assert len(recs) == 10 * 4 and all(r["error"] is None for r in recs)
    for r in recs:
        assert r["aggregator"] == "weighted_majority" and r["prm_tokens"] > 0
        assert r["flops_total"] > r["flops_policy"] > 0
        # children continue from their parent's cached prefix
        assert r["policy_cached_tokens"] > 0
        if r["strategy"] == "rebase":
            assert r["n_candidates"] == r["budget"] == r["n_finished"] + r["n_truncated"]
    trees = tmp_path / "out" / "trees" / "tiny"
    for label in ("rebase-b4-s0", "rebase-b8-s0", "rebase-b16-s0", "mcts-b8-s0"):
        nodes = [json.loads(line) for line in (trees / f"{label}.jsonl").read_text().splitlines()]
        assert {n["problem_id"] for n in nodes} == {r["problem_id"] for r in recs}
        by_id = {(n["problem_id"], n["id"]): n for n in nodes}
        for n in nodes:
            assert {"id", "parent", "depth", "text", "step_scores", "token_ids", "allocation"} <= set(n)
            # one score per step on the path; a blank completion is a node but not a step
            steps, m = 0, n
            while m["parent"] is not None:
                steps += bool(m["text"].strip())
                m = by_id[(n["problem_id"], m["parent"])]
            assert len(n["step_scores"]) == steps
        roots = [n for n in nodes if n["depth"] == 0]
        if label.startswith("rebase"):
            assert all(n["allocation"] == int(label.split("-b")[1].split("-")[0]) for n in roots)
