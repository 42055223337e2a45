"""Nothing is lost or doubled when a sweep is killed: SIGKILL at seeded random moments, resume, compare.

Why: sweeps run for hours on shared machines and get killed (OOM killer, preemption, Ctrl-\\). The
record store promises that a kill loses at most the batch in flight and that a resumed sweep ends
with exactly the records of an uninterrupted one: every line parses, no key appears twice, and the
trees hold each problem once.

The slow test runs `python -m rebase.cli sweep` on a tiny model in a subprocess, kills it with
SIGKILL 20 times (restarting after each kill), lets it finish, and compares with an uninterrupted
sweep of the same config. Most kill moments are drawn after the run has started working (detected by
config.json being rewritten), uniformly over about one batch, so each restart makes a little progress;
every fourth is drawn over the start-up (imports, model load, pruning). The fast tests simulate the
two dangerous kill points directly: a torn write at every byte offset, and a kill between a batch's
tree lines and its records.

    OMP_NUM_THREADS=1 .venv/bin/python -m pytest -q tests/test_kill.py            # fast part
    OMP_NUM_THREADS=1 .venv/bin/python -m pytest -q -m slow tests/test_kill.py    # the kill harness
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
import yaml

from eval.records import record_key
from eval.store import RecordStore
from rebase.cli import main

ROOT = Path(__file__).resolve().parents[1]
KILLS = 20
SEED = 20260415


def kill_config(tiny_dir: Path, data_dir: Path, limit: int = 8) -> dict:
    # one problem per batch: many write points; no PRM and 16 tokens keep each restart cheap
    return {
        "models": [{"name": "tiny", "path": str(tiny_dir / "llama")}],
        "dataset": {"name": "gsm8k", "path": str(data_dir / "gsm8k" / "test.jsonl"), "limit": limit},
        "strategies": [{"name": "greedy", "budgets": [1]}, {"name": "majority", "budgets": [1, 2]}],
        "sampling": {"max_tokens": 16, "max_step_tokens": 8},
        "batch_problems": 1,
    }


def read_lines(path: Path) -> list[dict]:
    """Every line must be a whole JSON object: a torn or glued line fails here."""
    raw = path.read_bytes()
    assert raw == b"" or raw.endswith(b"\n"), f"{path}: torn tail"
    return [json.loads(line) for line in raw.decode("utf-8").splitlines()]


def strip(recs: list[dict]) -> list[str]:
    return sorted(json.dumps({k: v for k, v in r.items() if k != "wall_s"}, sort_keys=True) for r in recs)


def tree_lines(out: Path) -> dict[str, list[str]]:
    trees = {}
    for f in sorted((out / "trees").rglob("*.jsonl")):
        trees[str(f.relative_to(out))] = sorted(json.dumps(x, sort_keys=True) for x in read_lines(f))
    return trees


def check_final(out: Path, base: Path) -> None:
    recs = read_lines(out / "results.jsonl")
    keys = Counter(record_key(r) for r in recs if not r.get("error"))
    assert not [k for k, n in keys.items() if n > 1], "duplicate successful records"
    assert strip(recs) == strip(read_lines(base / "results.jsonl"))
    trees, base_trees = tree_lines(out), tree_lines(base)
    assert trees.keys() == base_trees.keys()
    for name in trees:
        assert trees[name] == base_trees[name], f"{name}: tree lines differ (lost or doubled nodes)"


# -- fast: the two dangerous kill points, simulated -------------------------------------------------


def test_torn_write_at_every_offset_is_cut_and_resumable(tmp_path):
    """A kill mid-write leaves a prefix of the batch; reopening cuts the half line, keeps whole ones,
    and appending the batch again adds only what is missing (no key twice)."""
    rows = [
        {
            "model": "m",
            "dataset": "d",
            "problem_id": f"p{i}",
            "strategy": "s",
            "aggregator": "a",
            "budget": 1,
            "seed": 0,
            "error": None,
            "x": "é" * i,
        }
        for i in range(4)
    ]
    first = [rows[0]]
    blob0 = "".join(json.dumps(r, sort_keys=True, ensure_ascii=False) + "\n" for r in first).encode()
    blob1 = "".join(json.dumps(r, sort_keys=True, ensure_ascii=False) + "\n" for r in rows[1:]).encode()
    ends = [i + 1 for i, b in enumerate(blob1) if b == ord("\n")]
    # every line boundary, one byte either side of it, and a spread of offsets inside lines
    cuts = sorted({0, len(blob1)} | {c + d for c in ends for d in (-1, 0, 1)} | set(range(0, len(blob1), 17)))
    for cut in (c for c in cuts if 0 <= c <= len(blob1)):
        path = tmp_path / f"r{cut}.jsonl"
        path.write_bytes(blob0 + blob1[:cut])
        store = RecordStore(path)  # opening cuts a torn tail
        assert path.read_bytes().endswith(b"\n")
        whole = blob1[:cut].count(b"\n")
        assert len(read_lines(path)) == 1 + whole
        store.append(rows[1:])  # the resumed sweep recomputes the batch
        recs = read_lines(path)
        assert [r["problem_id"] for r in recs] == [r["problem_id"] for r in rows], cut
    # a failure is superseded by a success, and a success is never overwritten by a failure
    path = tmp_path / "f.jsonl"
    store = RecordStore(path)
    store.append([dict(rows[0], error="boom")])
    store.append([rows[0]])
    store.append([dict(rows[0], error="late")])
    assert [r["error"] for r in read_lines(path)] == ["boom", None]
    assert RecordStore(path).load()[record_key(rows[0])]["error"] is None


def test_kill_between_trees_and_records_leaves_no_duplicate(tmp_path, tiny_dir, data_dir, capsys):
    """Trees are written before records; cut the records back as a kill after a batch's trees would,
    resume, and the trees must hold every problem once and match an uninterrupted sweep."""
    cfg = kill_config(tiny_dir, data_dir, limit=3)
    p = tmp_path / "k.yaml"
    p.write_text(yaml.safe_dump(cfg))
    base, out = tmp_path / "base", tmp_path / "out"
    assert main(["sweep", str(p), "--out", str(base), "--no-progress"]) == 0
    assert main(["sweep", str(p), "--out", str(out), "--no-progress"]) == 0
    lines = (out / "results.jsonl").read_bytes().splitlines(keepends=True)
    # drop the last two batches' records (and tear the line before them) but keep their trees
    last = read_lines(out / "results.jsonl")[-1]["problem_id"]
    keep = [ln for ln in lines if json.loads(ln)["problem_id"] != last]
    (out / "results.jsonl").write_bytes(b"".join(keep[:-1]) + keep[-1][:7])
    assert main(["sweep", str(p), "--out", str(out), "--no-progress"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["new_records"] >= 1
    check_final(out, base)


# -- slow: the real thing -----------------------------------------------------------------------------


def _launch(cfg_path: Path, out: Path) -> subprocess.Popen:
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    return subprocess.Popen(
        [sys.executable, "-m", "rebase.cli", "sweep", str(cfg_path), "--out", str(out), "--no-progress"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def _stamp(path: Path):
    try:
        st = path.stat()
        return st.st_ino, st.st_mtime_ns
    except FileNotFoundError:
        return None


def _wait_started(proc: subprocess.Popen, out: Path, before, limit: float = 60.0) -> float:
    """Seconds until config.json is (re)written, i.e. the run has passed its checks and loads."""
    t0 = time.perf_counter()
    while proc.poll() is None and time.perf_counter() - t0 < limit:
        if _stamp(out / "config.json") != before:
            break
        time.sleep(0.01)
    return time.perf_counter() - t0


@pytest.mark.slow
def test_sigkill_at_random_moments_then_resume_equals_uninterrupted(tmp_path, tiny_dir, data_dir):
    cfg = kill_config(tiny_dir, data_dir, limit=24)  # enough batches that 20 kills cannot finish it
    p = tmp_path / "k.yaml"
    p.write_text(yaml.safe_dump(cfg))
    base, out = tmp_path / "base", tmp_path / "out"

    proc = _launch(p, base)
    t_start = _wait_started(proc, base, None)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err.decode()[-2000:]
    # one batch's time, from the files' own clocks: config.json is written just before the first
    # batch, results.jsonl last touched by the final one
    n_batches = cfg["dataset"]["limit"] * 2  # greedy unit + the majority pool, one problem each
    span = ((base / "results.jsonl").stat().st_mtime_ns - (base / "config.json").stat().st_mtime_ns) / 1e9
    batch_s = max(span / n_batches, 0.01)

    rng = random.Random(SEED)
    live_kills, progress = 0, []
    for k in range(KILLS):
        before = _stamp(out / "config.json")
        proc = _launch(p, out)
        if k % 4 == 3:
            # during imports, checks, model load: a restart may be quicker than the first run, so
            # the kill comes at the drawn moment or when work starts, whichever is first
            _wait_started(proc, out, before, limit=rng.uniform(0, t_start))
        else:
            _wait_started(proc, out, before)
            time.sleep(rng.uniform(0, 1.2 * batch_s))  # while batches are searched and written
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            live_kills += 1
        proc.communicate(timeout=60)
        res = out / "results.jsonl"
        progress.append(len(res.read_bytes().splitlines()) if res.exists() else 0)
    # the kills must have landed while there was work left, else the test proves nothing
    assert live_kills >= KILLS - 2, (live_kills, progress, batch_s)
    assert progress[-1] < len(read_lines(base / "results.jsonl")), progress

    proc = _launch(p, out)
    stdout, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err.decode()[-2000:]
    summary = json.loads(stdout.decode().strip().splitlines()[-1])
    assert summary["failed"] == 0
    check_final(out, base)
