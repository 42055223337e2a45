"""Distributed sweeps on Ray (eval/distributed.py).

    OMP_NUM_THREADS=1 .venv/bin/python -m pytest -q tests/test_ray.py          # all, ~1-2 minutes
    OMP_NUM_THREADS=1 .venv/bin/python -m pytest -q tests/test_ray.py -m "not slow"

The fast tests check actor planning and that a batch failing inside an actor becomes failure
records. The slow one starts a real local Ray instance (2 CPUs, no dashboard, a small object
store) through `rebase sweep --ray` and checks that its records equal the single-process sweep's
with 2 actors, with 1 actor and another batch size, and that a resumed `--ray` sweep computes nothing.
"""

from __future__ import annotations

import json

import pytest
import yaml

from eval.distributed import SweepActor, failure_records, plan_actors
from eval.plan import plan_units
from rebase.cli import main
from rebase.config import RunConfig
from rebase.errors import BadInput


def config(tiny_dir, data_dir, **extra) -> dict:
    cfg = {
        "models": [{"name": "tiny-llama", "path": str(tiny_dir / "llama")}],
        "prm": {"family": "step_tag", "path": str(tiny_dir / "prm_llama"), "tag": " ки", "good": "+", "bad": "-"},
        "dataset": {"name": "gsm8k", "path": str(data_dir / "gsm8k" / "test.jsonl"), "limit": 6},
        "strategies": [{"name": "greedy", "budgets": [1]}, {"name": "weighted_majority", "budgets": [1, 4]},
                       {"name": "rebase", "budgets": [4]}],
        "sampling": {"max_tokens": 24, "max_step_tokens": 12, "temperature": 1.0},
        "batch_problems": 2,
    }
    cfg.update(extra)
    return cfg


def sweep(tmp_path, cfg: dict, name: str, *flags: str) -> tuple[int, dict, list[dict]]:
    p = tmp_path / f"{name}.yaml"
    p.write_text(yaml.safe_dump(cfg))
    code = main(["sweep", str(p), "--out", str(tmp_path / name), "--no-progress", *flags])
    recs = [json.loads(line) for line in (tmp_path / name / "results.jsonl").read_text().splitlines()]
    return code, recs


def strip(recs: list[dict]) -> list[str]:
    return sorted(json.dumps({k: v for k, v in r.items() if k != "wall_s"}, sort_keys=True) for r in recs)


def summary(capsys) -> dict:
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def test_plan_actors_one_per_gpu_else_cpu_workers():
    assert plan_actors({"CPU": 16.0, "GPU": 4.0}, None) == (4, {"num_gpus": 1, "num_cpus": 1.0})
    assert plan_actors({"CPU": 16.0, "GPU": 4.0}, 8)[0] == 4  # never more actors than GPUs
    assert plan_actors({"CPU": 16.0, "GPU": 4.0}, 2)[0] == 2
    assert plan_actors({"CPU": 2.0}, None) == (2, {"num_cpus": 1.0})
    assert plan_actors({"CPU": 1.0}, None) == (1, {"num_cpus": 1.0})
    n, opts = plan_actors({"CPU": 2.0}, 4)  # all four must fit at once
    assert n == 4 and opts["num_cpus"] == 0.5


def test_bad_worker_count_is_bad_input(monkeypatch, tiny_dir, data_dir, tmp_path):
    monkeypatch.setenv("REBASE_RAY_WORKERS", "zero")
    from eval.distributed import run_on_ray

    with pytest.raises(BadInput, match="REBASE_RAY_WORKERS"):
        run_on_ray(RunConfig.model_validate(config(tiny_dir, data_dir)), tmp_path, [object()], None, None, False)


def test_actor_turns_a_failing_batch_into_failure_records(tiny_dir, data_dir):
    from rebase.tasks.datasets import load_problems

    cfg = RunConfig.model_validate(config(tiny_dir, data_dir))
    problems = load_problems(cfg.dataset)[:2]
    unit = plan_units(cfg)[1]  # the weighted_majority pool: two outputs per problem
    bad = cfg.models[0].model_copy(update={"path": str(data_dir)})  # a directory, not a model
    recs, trees, fails = SweepActor(cfg).run(bad, unit, problems)
    assert len(recs) == 2 * len(unit.outputs) and trees == [] and len(fails) == 2
    assert all(r["error"] and r["correct"] == 0.0 and r["model"] == "tiny-llama" for r in recs)
    assert {r["problem_id"] for r in recs} == {p.id for p in problems}
    # the driver builds the same shape when an actor dies, without loading anything
    recs2, _, fails2 = failure_records(cfg, cfg.models[0], unit, problems, "RayActorError: died")
    assert [sorted(r) for r in recs2] == [sorted(r) for r in recs] and fails2[0].endswith("died")


@pytest.fixture
def local_ray(monkeypatch):
    """Small resources for the private local instance the sweep starts, and a teardown that makes
    sure nothing is left running whatever the test did."""
    import ray

    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.setenv("REBASE_RAY_CPUS", "2")
    monkeypatch.setenv("REBASE_RAY_OBJECT_STORE_MB", "200")
    monkeypatch.delenv("REBASE_RAY_WORKERS", raising=False)
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    yield monkeypatch
    if ray.is_initialized():
        ray.shutdown()


@pytest.mark.slow
def test_ray_sweep_equals_single_process_and_resumes(tmp_path, tiny_dir, data_dir, local_ray, capsys):
    import ray

    cfg = config(tiny_dir, data_dir)
    code, local = sweep(tmp_path, cfg, "local")
    assert code == 0 and len(local) == 6 * 4
    capsys.readouterr()

    code, two = sweep(tmp_path, cfg, "ray2", "--ray")
    s = summary(capsys)
    assert code == 0 and s["failed"] == 0 and s["new_records"] == len(local)
    assert not ray.is_initialized()  # the sweep shut down the instance it started
    assert strip(two) == strip(local)
    # trees: the same lines per unit, in whatever order the batches came back
    for f in (tmp_path / "local" / "trees").rglob("*.jsonl"):
        mine = (tmp_path / "ray2" / f.relative_to(tmp_path / "local")).read_text().splitlines()
        assert sorted(mine) == sorted(f.read_text().splitlines()), f.name

    # one actor, and batches of 3 instead of 2: request seeds come from (seed, problem, node),
    # so neither who runs a batch nor what else is in it changes a record
    local_ray.setenv("REBASE_RAY_WORKERS", "1")
    code, one = sweep(tmp_path, dict(cfg, batch_problems=3), "ray1", "--ray")
    assert code == 0 and strip(one) == strip(local)

    # resume through Ray: everything is done, nothing is computed, nothing is appended
    local_ray.delenv("REBASE_RAY_WORKERS")
    capsys.readouterr()
    code, again = sweep(tmp_path, cfg, "ray2", "--ray")
    s = summary(capsys)
    assert code == 0 and s["new_records"] == 0 and s["records"] == len(local) and len(again) == len(two)
