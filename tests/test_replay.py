"""`rebase replay`: saved trees re-aggregate offline, and the reduction / aggregator choice matters."""

from __future__ import annotations

import json

from eval.replay import replay
from rebase.config import RunConfig


def node(i, parent, depth, text, scores, finished=False, truncated=False):
    return {"id": i, "parent": parent, "depth": depth, "text": text, "token_ids": [], "step_scores": scores,
            "reward": None, "finish_reason": "stop", "finished": finished, "truncated": truncated, "allocation": 0,
            "visits": 0, "value": 0.0, "path_tokens": 3 * depth}


def test_replay_rebuilds_candidates_and_regrades(tmp_path):
    cfg = RunConfig.model_validate({"models": [{"name": "m", "path": "x"}], "dataset": {"name": "gsm8k"},
                                    "strategies": [{"name": "majority", "budgets": [2]}]})
    (tmp_path / "config.json").write_text(json.dumps({"config": cfg.model_dump(mode="json")}))
    (tmp_path / "results.jsonl").write_text(json.dumps({"problem_id": "p", "gold": "5"}) + "\n")
    # a root with three solutions: two say 4 with low final scores, one says 5 with a high one;
    # "min" prefers 4 (the 5-path has a weak first step), "last" prefers 5
    nodes = [node(0, None, 0, "prompt", []),
             node(1, 0, 1, "2 + 2 = 4", [0.9]), node(2, 0, 1, "2 + 3 = 5", [0.1]),
             node(3, 1, 2, "The answer is 4.", [0.9, 0.2], finished=True),
             node(4, 1, 2, "The answer is 4.", [0.9, 0.2], finished=True),
             node(5, 2, 2, "The answer is 5.", [0.1, 0.95], finished=True)]
    d = tmp_path / "trees" / "m"
    d.mkdir(parents=True)
    # a repeated tree (a search restarted after a kill) must replace, not double, the first one
    (d / "rebase-b3-s0.jsonl").write_text("".join(json.dumps(dict(problem_id="p", **n)) + "\n" for n in nodes * 2))
    out = replay(tmp_path)
    import pandas as pd

    t = pd.read_csv(out["replay"]).set_index(["aggregator", "reduction"])["accuracy"]
    assert t[("majority", "last")] == 0.0
    assert t[("best_of_n", "last")] == 1.0 and t[("best_of_n", "min")] == 0.0
    assert t[("weighted_majority", "last")] == 1.0 and t[("weighted_majority", "mean")] == 0.0
