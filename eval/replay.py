"""`rebase replay DIR`: re-aggregate saved search trees with any aggregator and step-score reduction,
without generating or scoring again.

Trees (DIR/trees/<model>/<unit>.jsonl, one node a line with its problem id, text, step scores and
finish flags) are rebuilt, their candidates recovered exactly as the strategy formed them (the
strategy that wrote a tree file says how: Strategy.saved_candidates), and every
requested aggregator x reduction graded against the gold answers in DIR/results.jsonl. Writes
DIR/replay.csv (model, unit, aggregator, reduction, accuracy, problems) and returns a summary.

Bad directories are BadInput (exit 2, one line): a config.json that is not a readable config, a
tree line that parses but is not a node (or names a parent it does not have), records of more
than one dataset (their golds would be graded by one dataset's rules), links anywhere under DIR's
trees/. Torn or non-UTF-8 lines are skipped with a warning, as the sweep skips them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

from rebase.errors import BadInput
from rebase.registry import AGGREGATORS, STRATEGIES
from rebase.types import REDUCTIONS, Node
from eval.outdir import check_tree, check_writable, inside
from eval.plan import search_of
from eval.store import numbered_lines


def _node(path: Path, i: int, row: Any, tree: Optional[list[Node]]) -> tuple[str, Node]:
    """(problem id, node) of one tree line, or BadInput naming the line."""
    from pydantic import TypeAdapter, ValidationError

    if not isinstance(row, dict) or not isinstance(row.get("problem_id"), str):
        raise BadInput(f"{path}:{i}: not a tree node (expected a JSON object with a problem_id)")
    fields = {k: v for k, v in row.items() if k != "problem_id"}
    try:
        node = TypeAdapter(Node).validate_python(fields)
    except ValidationError as e:
        err = e.errors()[0]
        raise BadInput(
            f"{path}:{i}: not a tree node ({'.'.join(map(str, err['loc'])) or 'node'}: {err['msg']})"
        ) from None
    if node.id != 0 and (tree is None or node.parent not in {n.id for n in tree}):
        raise BadInput(f"{path}:{i}: node {node.id} names parent {node.parent}, which its tree does not have")
    return row["problem_id"], node


def load_trees(path: Path) -> dict[str, list[Node]]:
    """problem id -> nodes; a problem searched again after a kill keeps its last complete tree."""
    trees: dict[str, list[Node]] = {}
    for i, row in numbered_lines(path):
        pid, node = _node(path, i, row, trees.get(row.get("problem_id")) if isinstance(row, dict) else None)
        if node.id == 0:
            trees[pid] = []  # a root starts a (possibly repeated) tree
        trees[pid].append(node)
    return trees


def candidates_of(unit: str, nodes: list[Node], ctx: Any) -> list:
    """The candidates the search that wrote tree file `unit` formed from `nodes`: the strategy
    declares how (Strategy.saved_candidates); a search no longer registered (a plugin not
    installed here) gets the tree searches' rule."""
    from strategies.base import Strategy

    name = search_of(unit)
    cls = STRATEGIES.get(name) if name in STRATEGIES else Strategy
    return cls.saved_candidates(nodes, ctx)


def read_config(cfg_file: Path) -> Any:
    """The RunConfig that config.json holds, or BadInput."""
    from pydantic import ValidationError

    from rebase.config import RunConfig

    try:
        blob = json.loads(cfg_file.read_bytes().decode("utf-8"))
        return RunConfig.model_validate(blob["config"])
    except (ValueError, TypeError, KeyError) as e:  # ValidationError and UnicodeDecodeError are ValueErrors
        why = (
            "not a valid config" if isinstance(e, ValidationError) else f"not JSON with a 'config' ({type(e).__name__})"
        )
        raise BadInput(f"{cfg_file}: unreadable: {why}") from None


def golds(path: Path, dataset: str) -> dict[str, str]:
    """problem id -> gold of the records; records of another dataset are BadInput."""
    gold: dict[str, str] = {}
    for i, rec in numbered_lines(path):
        if not isinstance(rec, dict) or not isinstance(rec.get("problem_id"), str) or "gold" not in rec:
            raise BadInput(f"{path}:{i}: not a record (expected a JSON object with problem_id and gold)")
        if rec.get("dataset", dataset) != dataset:
            raise BadInput(
                f"{path}: holds records of dataset {rec['dataset']!r} beside {dataset!r} (config.json); "
                "replay grades one dataset"
            )
        gold[rec["problem_id"]] = rec.get("gold")
    return gold


def replay(run_dir: Path, aggregators: Optional[list[str]] = None, reductions: Optional[list[str]] = None) -> dict:
    import pandas as pd

    from rebase.tasks.grading import grade
    from rebase.tasks.prompts import PromptFormat
    from strategies.aggregators import aggregate
    from strategies.aggregators import needs_prm as aggregator_needs_prm
    from strategies.base import SearchContext

    known = AGGREGATORS.in_order()
    aggregators = aggregators or known
    reductions = reductions or list(REDUCTIONS)
    for a in aggregators:
        if a not in known:
            raise BadInput(f"--aggregator: unknown aggregator '{a}'; available: {', '.join(known)}")
    for r in reductions:
        if r not in REDUCTIONS:
            raise BadInput(f"--reduction: unknown reduction '{r}'; available: {', '.join(REDUCTIONS)}")
    if not run_dir.is_dir():
        raise BadInput(f"{run_dir}: not a directory")
    cfg_file, trees_dir = inside(run_dir, "config.json"), inside(run_dir, "trees", kind="dir")
    if not cfg_file.exists() or not trees_dir.is_dir():
        raise BadInput(f"{run_dir}: no config.json and trees/ here (was it run with save_trees?)")
    check_tree(run_dir, "trees")
    cfg = read_config(cfg_file)
    gold = golds(inside(run_dir, "results.jsonl"), cfg.dataset.name)
    ctx = SearchContext(
        generator=None,
        prm=None,
        prompts=PromptFormat.from_config(cfg.dataset.name, cfg.prompt),  # type: ignore[arg-type]
        sampling=cfg.sampling,
        seed=0,
        dataset=cfg.dataset.name,
        include_truncated=cfg.include_truncated,
    )
    rows = []
    for f in sorted(trees_dir.glob("*/*.jsonl")):
        model, unit = f.parent.name, f.stem
        cands = {pid: candidates_of(unit, nodes, ctx) for pid, nodes in load_trees(f).items() if pid in gold}
        for a in aggregators:
            for r in reductions if aggregator_needs_prm(a) else ["last"]:
                ok = [
                    grade(
                        aggregate(
                            a, cs, r, cfg.include_truncated, dataset=cfg.dataset.name, include_invalid=cfg.invalid_votes
                        ),
                        gold[pid],
                        cfg.dataset.name,
                    )
                    for pid, cs in cands.items()
                ]
                rows.append(
                    {
                        "model": model,
                        "unit": unit,
                        "aggregator": a,
                        "reduction": r,
                        "accuracy": sum(ok) / max(len(ok), 1),
                        "problems": len(ok),
                    }
                )
    table = pd.DataFrame(rows)
    check_writable(run_dir, "replay:")
    table.to_csv(inside(run_dir, "replay.csv"), index=False)
    best = table.sort_values("accuracy", ascending=False).head(1).to_dict("records") if len(table) else []
    return {"replay": str(run_dir / "replay.csv"), "rows": len(table), "best": best}
