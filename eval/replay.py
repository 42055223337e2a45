"""`rebase replay DIR`: re-aggregate saved search trees with any aggregator and step-score reduction,
without generating or scoring again.

Trees (DIR/trees/<model>/<unit>.jsonl, one node a line with its problem id, text, step scores and
finish flags) are rebuilt, their candidates recovered exactly as the strategy formed them, and every
requested aggregator x reduction graded against the gold answers in DIR/results.jsonl. Writes
DIR/replay.csv (model, unit, aggregator, reduction, accuracy, problems) and returns a summary.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

from rebase.errors import BadInput
from rebase.types import Node
from eval.store import read_jsonl

REDUCTIONS = ("last", "min", "prod", "mean")
AGGREGATORS = ("majority", "best_of_n", "weighted_majority")


def load_trees(path: Path) -> dict[str, list[Node]]:
    """problem id -> nodes; a problem searched again after a kill keeps its last complete tree."""
    trees: dict[str, list[Node]] = {}
    for row in read_jsonl(path):
        pid = row.pop("problem_id")
        node = Node(**row)
        if node.id == 0:
            trees[pid] = []  # a root starts a (possibly repeated) tree
        trees.setdefault(pid, []).append(node)
    return trees


def candidates_of(unit: str, nodes: list[Node], ctx: Any) -> list:
    from strategies.mcts import MCTS
    from strategies.sampling import candidate_from_text
    from strategies.tree import Tree

    if unit.startswith(("pool-", "greedy-", "majority-", "best_of_n-", "weighted_majority-")):
        out = []
        for n in nodes[1:]:
            c = candidate_from_text(n.text, n.finish_reason or "stop", n.path_tokens, ctx)
            c.step_scores = list(n.step_scores) or None
            out.append(c)
        return out
    tree = Tree(problem=None, nodes=nodes)  # type: ignore[arg-type]
    for n in nodes[1:]:
        tree.children.setdefault(n.parent, []).append(n.id)
    return MCTS.tree_candidates(tree, ctx) if unit.startswith("mcts-") else tree.candidates(ctx)


def replay(run_dir: Path, aggregators: Optional[list[str]] = None, reductions: Optional[list[str]] = None) -> dict:
    import pandas as pd

    from rebase.tasks.grading import grade
    from rebase.tasks.prompts import PromptFormat
    from rebase.config import RunConfig
    from strategies.aggregators import aggregate
    from strategies.base import SearchContext

    aggregators = aggregators or list(AGGREGATORS)
    reductions = reductions or list(REDUCTIONS)
    for a in aggregators:
        if a not in AGGREGATORS:
            raise BadInput(f"--aggregator: unknown aggregator '{a}'; available: {', '.join(AGGREGATORS)}")
    for r in reductions:
        if r not in REDUCTIONS:
            raise BadInput(f"--reduction: unknown reduction '{r}'; available: {', '.join(REDUCTIONS)}")
    cfg_file, trees_dir = run_dir / "config.json", run_dir / "trees"
    if not cfg_file.exists() or not trees_dir.is_dir():
        raise BadInput(f"{run_dir}: no config.json and trees/ here (was it run with save_trees?)")
    cfg = RunConfig.model_validate(json.loads(cfg_file.read_text())["config"])
    gold = {r["problem_id"]: r["gold"] for r in read_jsonl(run_dir / "results.jsonl")}
    ctx = SearchContext(generator=None, prm=None, prompts=PromptFormat.from_config(cfg.dataset.name, cfg.prompt),  # type: ignore[arg-type]
                        sampling=cfg.sampling, seed=0, dataset=cfg.dataset.name, include_truncated=cfg.include_truncated)
    rows = []
    for f in sorted(trees_dir.glob("*/*.jsonl")):
        model, unit = f.parent.name, f.stem
        cands = {pid: candidates_of(unit, nodes, ctx) for pid, nodes in load_trees(f).items() if pid in gold}
        for a in aggregators:
            for r in reductions if a != "majority" else ["last"]:
                ok = [grade(aggregate(a, cs, r, cfg.include_truncated), gold[pid], cfg.dataset.name)
                      for pid, cs in cands.items()]
                rows.append({"model": model, "unit": unit, "aggregator": a, "reduction": r,
                             "accuracy": sum(ok) / max(len(ok), 1), "problems": len(ok)})
    table = pd.DataFrame(rows)
    table.to_csv(run_dir / "replay.csv", index=False)
    best = table.sort_values("accuracy", ascending=False).head(1).to_dict("records") if len(table) else []
    return {"replay": str(run_dir / "replay.csv"), "rows": len(table), "best": best}
