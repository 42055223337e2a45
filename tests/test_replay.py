"""`rebase replay`: saved trees re-aggregate offline, and the reduction / aggregator choice matters."""

from __future__ import annotations

import json

from eval.replay import replay
from rebase.config import RunConfig


def node(i, parent, depth, text, scores, finished=False, truncated=False):
    return {
        "id": i,
        "parent": parent,
        "depth": depth,
        "text": text,
        "token_ids": [],
        "step_scores": scores,
        "reward": None,
        "finish_reason": "stop",
        "finished": finished,
        "truncated": truncated,
        "allocation": 0,
        "visits": 0,
        "value": 0.0,
        "path_tokens": 3 * depth,
    }


def test_replay_rebuilds_candidates_and_regrades(tmp_path):
    cfg = RunConfig.model_validate(
        {
            "models": [{"name": "m", "path": "x"}],
            "dataset": {"name": "gsm8k"},
            "strategies": [{"name": "majority", "budgets": [2]}],
        }
    )
    (tmp_path / "config.json").write_text(json.dumps({"config": cfg.model_dump(mode="json")}))
    (tmp_path / "results.jsonl").write_text(json.dumps({"problem_id": "p", "gold": "5"}) + "\n")
    # a root with three solutions: two say 4 with low final scores, one says 5 with a high one;
    # "min" prefers 4 (the 5-path has a weak first step), "last" prefers 5
    nodes = [
        node(0, None, 0, "prompt", []),
        node(1, 0, 1, "2 + 2 = 4", [0.9]),
        node(2, 0, 1, "2 + 3 = 5", [0.1]),
        node(3, 1, 2, "The answer is 4.", [0.9, 0.2], finished=True),
        node(4, 1, 2, "The answer is 4.", [0.9, 0.2], finished=True),
        node(5, 2, 2, "The answer is 5.", [0.1, 0.95], finished=True),
    ]
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


def test_invalid_votes_setting_lets_the_no_answer_group_win(tmp_path):
    """`invalid_votes: true` (the released code's rule, docs/FIDELITY.md): candidates with no answer
    vote as one group; three of them outvote two right answers, and that win is graded wrong."""
    nodes = [node(0, None, 0, "prompt", [])]
    nodes += [node(i, 0, 1, "I cannot tell.", [0.5], finished=True) for i in (1, 2, 3)]
    nodes += [node(i, 0, 1, "The answer is 5.", [0.5], finished=True) for i in (4, 5)]
    accuracy = {}
    for flag in (False, True):
        run = tmp_path / str(flag)
        cfg = RunConfig.model_validate(
            {
                "models": [{"name": "m", "path": "x"}],
                "dataset": {"name": "gsm8k"},
                "strategies": [{"name": "majority", "budgets": [5]}],
                "invalid_votes": flag,
            }
        )
        (run / "trees" / "m").mkdir(parents=True)
        (run / "config.json").write_text(json.dumps({"config": cfg.model_dump(mode="json")}))
        (run / "results.jsonl").write_text(json.dumps({"problem_id": "p", "gold": "5"}) + "\n")
        (run / "trees" / "m" / "majority-b5-s0.jsonl").write_text(
            "".join(json.dumps(dict(problem_id="p", **n)) + "\n" for n in nodes)
        )
        import pandas as pd

        t = pd.read_csv(replay(run, aggregators=["majority"], reductions=["last"])["replay"])
        accuracy[flag] = float(t["accuracy"].iloc[0])
    assert accuracy == {False: 1.0, True: 0.0}
