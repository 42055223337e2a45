"""Distributed sweeps on Ray (eval/distributed.py).

    OMP_NUM_THREADS=1 .venv/bin/python -m pytest -q tests/test_ray.py          # all, ~1-2 minutes
    OMP_NUM_THREADS=1 .venv/bin/python -m pytest -q tests/test_ray.py -m "not slow"

The fast tests check actor planning and that a batch failing inside an actor becomes failure
records. The slow ones start a real local Ray instance (2 CPUs, no dashboard, a small object
store) through `rebase sweep --ray`: one checks that its records equal the single-process sweep's
with 2 actors, with 1 actor and another batch size, and that a resumed `--ray` sweep computes
nothing; the other that a programming error inside an actor (a plugin strategy's TypeError) stops
the sweep as it does without Ray: exit 1, one stderr line, the traceback in DIR/errors.log, the
records written before it kept.
"""

from __future__ import annotations

import json

import pytest
import yaml

from eval.distributed import SweepActor, dispatch_order, failure_records, plan_actors
from eval.plan import plan_units
from plugin_dist import make_plugin, rebase_cli
from rebase.cli import main
from rebase.config import RunConfig
from rebase.errors import BadInput


def config(tiny_dir, data_dir, **extra) -> dict:
    cfg = {
        "models": [{"name": "tiny-llama", "path": str(tiny_dir / "llama")}],
        "prm": {"family": "step_tag", "path": str(tiny_dir / "prm_llama"), "tag": " ки", "good": "+", "bad": "-"},
        "dataset": {"name": "gsm8k", "path": str(data_dir / "gsm8k" / "test.jsonl"), "limit": 6},
        "strategies": [
            {"name": "greedy", "budgets": [1]},
            {"name": "weighted_majority", "budgets": [1, 4]},
            {"name": "rebase", "budgets": [4]},
        ],
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


def test_batches_go_out_model_by_model_largest_budgets_first(tiny_dir, data_dir):
    """An actor never returns to a model it has left; within a model the costliest batches go
    first, so the sweep ends on cheap ones and no actor waits through another's last large batch."""
    cfg = RunConfig.model_validate(
        config(tiny_dir, data_dir, models=[{"name": n, "path": str(tiny_dir / "llama")} for n in ("a", "b")])
    )
    problems = [f"p{i}" for i in range(3)]  # 3 problems, batch_problems 2: two batches per unit
    work = [(m, u, problems) for m in cfg.models for u in plan_units(cfg)]
    order = dispatch_order(cfg, work)
    assert [m.name for m, _, _ in order] == ["a"] * 6 + ["b"] * 6
    assert [(u.label, b) for _, u, b in order[:6]] == [
        ("pool-b4-s0", ["p0", "p1"]),  # budget 4, planned before REBASE's
        ("pool-b4-s0", ["p2"]),
        ("rebase-b4-s0", ["p0", "p1"]),
        ("rebase-b4-s0", ["p2"]),
        ("greedy-b1-s0", ["p0", "p1"]),
        ("greedy-b1-s0", ["p2"]),
    ]


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


BUGGY_PLUGIN = '''"""A strategy with a programming error, and four sums to run it on."""
from rebase.registry import DATASETS, STRATEGIES
from rebase.types import Problem
from strategies.sampling import Greedy


@STRATEGIES.register("buggy_greedy")
class BuggyGreedy(Greedy):
    """Greedy decoding, with a TypeError once a batch holds problem sum-2."""

    name = "buggy_greedy"

    def search(self, problems, budget, ctx, score=None):
        if any(p.id == "sum-2" for p in problems):
            return "problems: " + len(problems)  # the bug: str + int
        return super().search(problems, budget, ctx, score=score)


@DATASETS.register("four_sums")
def load_sums(cfg):
    """Four fixed sums."""
    return [Problem(id=f"sum-{i}", question=f"Start with {a}. Add {b}. What is the result?", gold=str(a + b),
                    dataset="four_sums") for i, (a, b) in enumerate([(3, 4), (10, 5), (6, 2), (8, 1)])]
'''


@pytest.mark.slow
def test_a_bug_inside_a_ray_actor_stops_the_sweep_with_its_traceback(tmp_path):
    """The plugin reaches the actors as any installed plugin does (the entry point, on the
    PYTHONPATH the Ray workers inherit). One actor takes the batches in plan order: the first
    batch's records are written, the second batch raises inside the actor's worker."""
    site = make_plugin(tmp_path / "site", "buggy-plugin", "buggy_plugin", BUGGY_PLUGIN)
    cfg = {
        "models": [{"name": "arith-s", "path": "package:rebase.demo/models/arith-s"}],
        "dataset": {"name": "four_sums"},
        "strategies": [{"name": "buggy_greedy", "budgets": [1]}],
        "sampling": {"max_tokens": 32},
        "batch_problems": 2,
    }
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg), encoding="utf-8")
    env = {"REBASE_RAY_CPUS": "2", "REBASE_RAY_OBJECT_STORE_MB": "200", "REBASE_RAY_WORKERS": "1"}
    r = rebase_cli(["sweep", "c.yaml", "--out", "out", "--no-progress", "--ray"], site, tmp_path, env=env)
    assert r.returncode == 1, r.stderr[-3000:]
    assert not r.stdout.strip()  # no summary line: the sweep did not finish
    err = [line for line in r.stderr.splitlines() if line.startswith("error:")]
    assert len(err) == 1, r.stderr[-3000:]
    assert "bug: TypeError: can only concatenate str" in err[0] and "problems sum-2, sum-3" in err[0]
    assert "records written so far are kept" in err[0] and "errors.log" in err[0]
    out = tmp_path / "out"
    recs = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert sorted(x["problem_id"] for x in recs) == ["sum-0", "sum-1"] and not any(x["error"] for x in recs)
    log = (out / "errors.log").read_text(encoding="utf-8")
    assert log.count(": bug\n") == 1 and "Traceback (most recent call last)" in log
    assert 'return "problems: " + len(problems)' in log and "TypeError: can only concatenate str" in log
