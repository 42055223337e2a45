"""Distributed sweeps on Ray: the pending problems of each (model, unit) are cut into batches and
handed to Ray actors as they free up; the driver alone writes trees and records.

    rebase sweep CONFIG --out DIR --ray          # a private local Ray instance on this machine
    rebase sweep CONFIG --out DIR --ray auto     # the running cluster (`ray start --head` ...)
    rebase sweep CONFIG --out DIR --ray ray://HOST:10001

Why this shape: each actor holds one eval.worker.Worker (its own backend and PRM) for one model at
a time, so a model loads once per actor, not once per batch. Batches are cut exactly as the
single-process runner cuts them (cfg.batch_problems, plan order), and strategies seed every request
from (seed, problem id, node id), so records do not depend on which actor ran which batch. Results
stream back through ray.wait; the driver appends tree lines, then records, to DIR, so resume and
the store's kill-safety are the same as without Ray.

Actors: one per GPU (num_gpus=1 each) when the cluster has GPUs, else REBASE_RAY_WORKERS CPU actors
(default min(2, cluster CPUs)). A local instance takes REBASE_RAY_CPUS (default: all cores) and
REBASE_RAY_OBJECT_STORE_MB (default 256). docs/CLUSTER.md has the cluster side.
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
import tempfile
from typing import Any, Optional

from rebase.config import ModelConfig, RunConfig
from rebase.errors import BadInput, SearchBug
from eval.engines import Engines
from eval.plan import Unit, batches
from eval.store import JsonlAppender, RecordStore

# settings every actor must see whatever the node's own environment says (never secrets: tokens
# belong in each node's environment or HF cache)
FORWARDED_ENV = (
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "TOKENIZERS_PARALLELISM",
    "TRANSFORMERS_VERBOSITY",
    "HF_HOME",
    "HF_HUB_OFFLINE",
    "HF_DATASETS_OFFLINE",
)
MAX_RESTARTS = 1  # an actor that dies (OOM, segfault) comes back once; its batch is recorded as failed


def _env_int(name: str, default: Optional[int], minimum: int = 1) -> Optional[int]:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        value = minimum - 1
    if value < minimum:
        raise BadInput(f"{name}={raw!r}: expected an integer >= {minimum}")
    return value


def plan_actors(resources: dict[str, float], requested: Optional[int]) -> tuple[int, dict[str, Any]]:
    """How many actors to start and the resources each asks for, from ray.cluster_resources()."""
    gpus = int(resources.get("GPU", 0))
    cpus = float(resources.get("CPU", 1.0)) or 1.0
    if gpus >= 1:
        # more actors than GPUs would wait for a GPU forever, so the request only caps the count
        n = min(requested or gpus, gpus)
        return n, {"num_gpus": 1, "num_cpus": min(1.0, cpus / n)}
    n = requested or max(1, min(2, int(cpus)))
    # every actor must fit at once, or the later ones never start and their batches wait forever
    return n, {"num_cpus": min(1.0, cpus / n)}


def failure_records(
    cfg: RunConfig, model: ModelConfig, unit: Unit, problems: list, msg: str, engines: Optional[Engines] = None
) -> tuple[list[dict], list[dict], list[str]]:
    """The (records, tree lines, failures) that Worker.run returns for problems that failed; never
    triggers a model load (without a loaded model the records carry the config's `params`)."""
    from eval.worker import Worker

    worker = Worker(cfg, model, engines if engines is not None else Engines(cfg))
    recs = [r for p in problems for r in worker.failed_records(unit, p, msg)]
    return recs, [], [f"{p.id}: {msg}" for p in problems]


class SweepActor:
    """Runs inside a Ray worker process with its own Engines: the policy of the current model and
    the PRM, kept across models as in the single-process runner. Never raises for a batch: errors
    become records."""

    def __init__(self, cfg: RunConfig):
        self.cfg = cfg
        self.engines = Engines(cfg)

    def run(self, model: ModelConfig, unit: Unit, problems: list) -> tuple[list[dict], list[dict], list[str]]:
        from eval.worker import Worker

        try:
            return Worker(self.cfg, model, self.engines).run(unit, problems)
        except SearchBug:
            raise  # a bug stops the sweep on the driver (run_on_ray), it is not a per-problem failure
        except Exception as e:  # noqa: BLE001 - e.g. the model fails to load: record it, keep the actor
            msg = f"{type(e).__name__}: {e}".splitlines()[0][:500]
            return failure_records(self.cfg, model, unit, problems, msg, self.engines)

    def close(self) -> None:
        self.engines.close()


def _connect(ray: Any, address: Optional[str], cfg: RunConfig) -> Optional[str]:
    """Start or join Ray; returns the temp dir of a local instance we started (to remove later)."""
    if address is not None:
        try:
            ray.init(address=address, logging_level=logging.WARNING)
        except (ConnectionError, ValueError) as e:
            raise BadInput(f"--ray {address}: cannot connect to a Ray cluster ({e})".splitlines()[0]) from None
        return None
    # a private directory: other Ray users of this machine share /tmp/ray, and "local" never joins
    # their instance (a bare ray.init() would attach to the latest `ray start` one)
    tmp = tempfile.mkdtemp(prefix="rebase-ray-", dir="/tmp")
    try:
        ray.init(
            address="local",
            num_cpus=_env_int("REBASE_RAY_CPUS", cfg.ray.cpus),
            include_dashboard=False,
            object_store_memory=_env_int("REBASE_RAY_OBJECT_STORE_MB", cfg.ray.object_store_mb, minimum=80) * 2**20,
            logging_level=logging.WARNING,
            _temp_dir=tmp,
        )
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return tmp


def run_on_ray(
    cfg: RunConfig, out: Any, work: list, store: RecordStore, ray_address: Optional[str], progress: bool
) -> tuple[int, list[str]]:
    """eval.runner's Ray path: same inputs and results as run_local. Returns (new records, failures)."""
    if not work:
        return 0, []  # resume with nothing pending: no cluster needed
    requested = _env_int("REBASE_RAY_WORKERS", cfg.ray.workers)  # checked before anything starts
    import ray

    owned = not ray.is_initialized()  # a caller's own session is left running
    tmp = _connect(ray, ray_address, cfg) if owned else None
    actors: list = []
    try:
        n, opts = plan_actors(ray.cluster_resources(), requested)
        env = {k: os.environ[k] for k in FORWARDED_ENV if k in os.environ}
        env.setdefault("OMP_NUM_THREADS", "1")
        cls = ray.remote(SweepActor).options(**opts, max_restarts=MAX_RESTARTS, runtime_env={"env_vars": env})
        actors = [cls.remote(cfg) for _ in range(n)]
        return _dispatch(ray, actors, cfg, out, work, store, progress)
    finally:
        for a in actors:
            try:  # close the actor's engines (a vLLM engine has child processes of its own)
                ray.get(a.close.remote(), timeout=60)
            except Exception:  # noqa: BLE001 - a dead actor has nothing left to close
                pass
            ray.kill(a)  # frees GPUs at once when the session outlives this sweep
        if owned:
            ray.shutdown()
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)


def dispatch_order(cfg: RunConfig, work: list) -> list[tuple[ModelConfig, Unit, list]]:
    """(model, unit, batch) in the order actors take them: models in config order (an actor never
    returns to a model it has left, so it loads each once), and within a model the largest budgets
    first (stable: plan order among equals). Why: no actor waits for another at the end of a model,
    and the sweep ends on its cheapest batches, so the actors finish together."""
    order: list[tuple[ModelConfig, Unit, list]] = []
    for model in cfg.models:
        mine = [(u, b) for m, u, ps in work if m is model for b in batches(ps, cfg.batch_problems)]
        mine.sort(key=lambda ub: -ub[0].budget)
        order += [(model, u, b) for u, b in mine]
    return order


def _dispatch(
    ray: Any, actors: list, cfg: RunConfig, out: Any, work: list, store: RecordStore, progress: bool
) -> tuple[int, list[str]]:
    from pathlib import Path

    from tqdm import tqdm

    from eval.outdir import inside, tree_path

    out = Path(out)
    bar = tqdm(
        total=sum(len(ps) for _, _, ps in work), desc="problems", unit="prob", disable=not progress, file=sys.stderr
    )
    trees: dict[tuple, JsonlAppender] = {}
    deaths = {id(a): 0 for a in actors}
    alive = list(actors)
    new, failures = 0, []
    try:
        queue = dispatch_order(cfg, work)
        queue.reverse()  # pop() hands the batches out in that order
        idle, running = list(alive), {}
        while queue or running:
            while queue and idle:
                a = idle.pop(0)
                model, unit, batch = queue.pop()
                running[a.run.remote(model, unit, batch)] = (a, model, unit, batch)
            if not running:  # every actor is gone: the rest fails now, a resume retries it
                model, unit, batch = queue.pop()
                result = failure_records(cfg, model, unit, batch, "RayActorError: no Ray worker left")
            else:
                [ref], _ = ray.wait(list(running), num_returns=1)
                a, model, unit, batch = running.pop(ref)
                try:
                    result = ray.get(ref)
                    idle.append(a)
                except ray.exceptions.RayActorError as e:  # the process died mid-batch
                    deaths[id(a)] += 1
                    if deaths[id(a)] <= MAX_RESTARTS:
                        idle.append(a)  # Ray restarts it; the model reloads on its next batch
                    else:
                        alive.remove(a)
                    msg = f"{type(e).__name__}: {e}".splitlines()[0][:500]
                    result = failure_records(cfg, model, unit, batch, msg)
                except Exception as e:  # noqa: BLE001 - e.g. a result that fails to deserialize
                    bug = getattr(e, "cause", None)
                    if isinstance(bug, SearchBug):
                        log = inside(out, "errors.log")
                        with open(log, "a", encoding="utf-8") as f:
                            f.write(f"=== model {model.name} {unit.label}: bug\n{bug.traceback_text.rstrip()}\n\n")
                        raise SearchBug(
                            f"{bug}; the sweep stopped, the records written so far are kept; traceback in {log}",
                            bug.traceback_text,
                        ) from None
                    idle.append(a)
                    msg = f"{type(e).__name__}: {e}".splitlines()[0][:500]
                    result = failure_records(cfg, model, unit, batch, msg)
            recs, tree_lines, fails = result
            if cfg.save_trees:
                key = (model.name, unit.label)
                if key not in trees:
                    trees[key] = JsonlAppender(tree_path(out, model.name, unit.label))
                trees[key].append(tree_lines)  # trees first: a record implies its tree is on disk
            new += store.append(recs)
            failures += fails
            bar.update(len(batch))
    finally:
        bar.close()
    return new, failures
