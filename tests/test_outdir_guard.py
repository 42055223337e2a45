"""The output directory under attack: one writer, no write outside --out, no traceback on odd files.

Why: an output directory is shared state. Two sweeps on one --out would both append (every record
twice, both exit 0); a results.jsonl planted as a link would make the sweep append to a file
elsewhere; a directory where a file belongs, a line that is JSON but not a record, bytes that are
not UTF-8, a full disk or a read-only directory must each end in one line and the documented exit
code (2 bad input, 1 I/O failure), with what was already written kept and resumable.

Runs the real CLI on the shipped arith-s demo policy (64k parameters) and the generated arith
task, mostly in-process; one test starts a second `rebase sweep` process.

    OMP_NUM_THREADS=1 .venv/bin/python -m pytest -q tests/test_outdir_guard.py
"""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import yaml

from eval.outdir import LOCK_NAME, DirLock, inside
from rebase.cli import main
from rebase.errors import BadInput

ROOT = Path(__file__).resolve().parents[1]
IS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0


def arith_cfg(size: int = 3, **extra) -> dict:
    return {
        "models": [{"name": "s", "path": "package:rebase.demo/models/arith-s"}],
        "dataset": {"name": "arith", "size": size},
        "strategies": [{"name": "greedy"}, {"name": "majority", "budgets": [2]}],
        "sampling": {"max_tokens": 40, "max_step_tokens": 16},
        "batch_problems": 1,
        **extra,
    }


def cfg_file(tmp_path: Path, d: dict, name: str = "c.yaml") -> str:
    p = tmp_path / name
    p.write_text(yaml.safe_dump(d), encoding="utf-8")
    return str(p)


def cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = main([*argv, "--no-progress"] if argv[0] in ("run", "sweep") else list(argv))
    cap = capsys.readouterr()
    return code, cap.out, cap.err


def one_error(err: str, fragment: str) -> None:
    # in-process runs: a model-loading progress bar shows when an earlier test imported transformers
    # before the CLI could turn bars off (a real `rebase` process turns them off first)
    lines = [
        ln
        for ln in err.replace("\r", "\n").splitlines()
        if ln.strip() and not ln.startswith("warning: ") and "it/s]" not in ln
    ]
    assert len(lines) == 1 and lines[0].startswith("error: ") and fragment in lines[0], err
    assert "Traceback" not in err


@pytest.fixture(scope="module")
def done_dir(tmp_path_factory) -> Path:
    """A finished sweep to copy: saves re-running the model in every test."""
    tmp = tmp_path_factory.mktemp("done")
    out = tmp / "out"
    assert main(["sweep", cfg_file(tmp, arith_cfg()), "--out", str(out), "--no-progress"]) == 0
    return out


def copy_of(done: Path, tmp_path: Path) -> Path:
    import shutil

    dst = tmp_path / "out"
    shutil.copytree(done, dst, symlinks=True)
    return dst


# -- names become paths ----------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["../../escaped", "/tmp/abs-escape", "./s", "n" * 300])
def test_model_names_never_become_paths_outside(tmp_path, capsys, name):
    d = arith_cfg()
    d["models"][0]["name"] = name
    out = tmp_path / "deep" / "out"
    code, stdout, err = cli(capsys, "sweep", cfg_file(tmp_path, d), "--out", str(out))
    assert code == 2 and not stdout
    one_error(err, "models.0.name:")
    assert not out.exists() and not (tmp_path / "escaped").exists() and not Path("/tmp/abs-escape").exists()


def test_inside_refuses_every_escape(tmp_path):
    root = tmp_path / "out"
    (root / "trees").mkdir(parents=True)
    for bad in ("..", ".", "", "a/b", "/abs"):
        with pytest.raises(BadInput, match="not a plain name"):
            inside(root, "trees", bad)
    (root / "trees" / "m").symlink_to(tmp_path)
    with pytest.raises(BadInput, match="symbolic link"):
        inside(root, "trees", "m", "x.jsonl")
    (root / "results.jsonl").mkdir()
    with pytest.raises(BadInput, match="is a directory where a file belongs"):
        inside(root, "results.jsonl")
    (root / "report").write_text("x")
    with pytest.raises(BadInput, match="is a file where a directory belongs"):
        inside(root, "report", kind="dir")


# -- one writer ------------------------------------------------------------------------------------


def test_second_writer_exits_2_naming_the_holder(tmp_path, capsys, done_dir):
    out = copy_of(done_dir, tmp_path)
    before = (out / "results.jsonl").read_bytes()
    with DirLock(out):  # this process holds it, as a running sweep would
        code, stdout, err = cli(capsys, "sweep", cfg_file(tmp_path, arith_cfg(size=4)), "--out", str(out))
    assert code == 2 and not stdout
    one_error(err, f"in use by another rebase process (pid {os.getpid()})")
    assert (out / "results.jsonl").read_bytes() == before
    # released on exit: the same sweep now runs, and leaves the lock free again
    code, stdout, err = cli(capsys, "sweep", cfg_file(tmp_path, arith_cfg(size=4)), "--out", str(out))
    assert code == 0, err
    assert (out / LOCK_NAME).read_text() == ""
    DirLock(out).acquire().release()


def test_stale_lock_of_a_dead_process_is_taken_over(tmp_path, capsys, done_dir):
    out = copy_of(done_dir, tmp_path)
    (out / LOCK_NAME).write_text("999999 some-host\n")  # a pid file left by a killed sweep
    code, _, err = cli(capsys, "sweep", cfg_file(tmp_path, arith_cfg()), "--out", str(out))
    assert code == 0, err


def test_two_processes_on_one_directory(tmp_path, capsys):
    """A real second process: it is refused while the first runs and names the first's pid; after
    the first is SIGKILLed (no chance to unlock) the lock is stale and a new sweep completes."""
    out = tmp_path / "out"
    cfg = cfg_file(tmp_path, arith_cfg(size=60))
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    first = subprocess.Popen(
        [sys.executable, "-m", "rebase.cli", "sweep", cfg, "--out", str(out), "--no-progress"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        t0 = time.time()
        while not (out / "results.jsonl").exists() and first.poll() is None and time.time() - t0 < 120:
            time.sleep(0.05)
        assert first.poll() is None, "the first sweep ended before the test could race it"
        code, stdout, err = cli(capsys, "sweep", cfg, "--out", str(out))
        assert code == 2 and not stdout
        one_error(err, f"(pid {first.pid})")
    finally:
        first.kill()
        first.wait()
    code, _, err = cli(capsys, "sweep", cfg, "--out", str(out))
    assert code == 0, err
    keys = [
        json.dumps([r[k] for k in ("problem_id", "strategy", "aggregator", "budget")])
        for r in map(json.loads, (out / "results.jsonl").read_text().splitlines())
    ]
    assert len(keys) == len(set(keys)) == 60 * 2


# -- links, misplaced directories, lines that are not records ------------------------------------------


def test_results_symlink_is_refused_by_sweep_and_report(tmp_path, capsys, done_dir):
    out = copy_of(done_dir, tmp_path)
    elsewhere = tmp_path / "elsewhere.jsonl"
    (out / "results.jsonl").rename(elsewhere)
    (out / "results.jsonl").symlink_to(elsewhere)
    before = elsewhere.read_bytes()
    code, _, err = cli(capsys, "sweep", cfg_file(tmp_path, arith_cfg(size=4)), "--out", str(out))
    assert code == 2
    one_error(err, "results.jsonl: is a symbolic link")
    code, _, err = cli(capsys, "report", str(out))
    assert code == 2
    one_error(err, "is a symbolic link")
    assert elsewhere.read_bytes() == before


def test_tree_folder_linked_outside_is_refused(tmp_path, capsys, done_dir):
    out = copy_of(done_dir, tmp_path)
    outside = tmp_path / "outside"
    (out / "trees" / "s").rename(outside)
    (out / "trees" / "s").symlink_to(outside, target_is_directory=True)
    before = {p.name: p.read_bytes() for p in outside.iterdir()}
    code, _, err = cli(capsys, "sweep", cfg_file(tmp_path, arith_cfg(size=4)), "--out", str(out))
    assert code == 2
    one_error(err, "is a symbolic link")
    assert {p.name: p.read_bytes() for p in outside.iterdir()} == before
    code, _, err = cli(capsys, "replay", str(out))
    assert code == 2
    one_error(err, "is a symbolic link")


@pytest.mark.parametrize("what", ["results_dir", "config_dir", "trees_file", "report_file"])
def test_a_directory_where_a_file_belongs_or_the_reverse(tmp_path, capsys, done_dir, what):
    out = copy_of(done_dir, tmp_path)
    if what == "results_dir":
        (out / "results.jsonl").unlink()
        (out / "results.jsonl").mkdir()
    elif what == "config_dir":
        (out / "config.json").unlink()
        (out / "config.json").mkdir()
    elif what == "trees_file":
        import shutil

        shutil.rmtree(out / "trees")
        (out / "trees").write_text("not a folder\n")
    else:
        (out / "report").write_text("not a folder\n")
    argv = (
        ("report", str(out)) if what == "report_file" else ("sweep", cfg_file(tmp_path, arith_cfg()), "--out", str(out))
    )
    code, _, err = cli(capsys, *argv)
    assert code == 2
    one_error(err, "belongs")


@pytest.mark.parametrize("line", [b"[1, 2, 3]\n", b'{"model": "s", "correct": 1}\n', b"7\n"])
def test_json_lines_that_are_not_records(tmp_path, capsys, done_dir, line):
    out = copy_of(done_dir, tmp_path)
    with open(out / "results.jsonl", "ab") as f:
        f.write(line)
    code, _, err = cli(capsys, "sweep", cfg_file(tmp_path, arith_cfg()), "--out", str(out))
    assert code == 2
    one_error(err, "results.jsonl:7: not a record")
    code, _, err = cli(capsys, "report", str(out))
    assert code == 2
    one_error(err, "results.jsonl:7:")


def test_non_utf8_bytes_are_skipped_alike_by_sweep_report_and_replay(tmp_path, capsys, done_dir):
    out = copy_of(done_dir, tmp_path)
    lines = (out / "results.jsonl").read_bytes().splitlines(keepends=True)
    bad = lines[0].replace(b'"gold": "', b'"gold": "\xff\xfe', 1)
    (out / "results.jsonl").write_bytes(bad + b"".join(lines[1:]))
    code, stdout, err = cli(capsys, "sweep", cfg_file(tmp_path, arith_cfg()), "--out", str(out))
    assert code == 0 and "results.jsonl:1: skipping a torn or malformed line" in err
    assert json.loads(stdout.splitlines()[-1])["new_records"] == 1  # the unreadable record, computed again
    code, stdout, err = cli(capsys, "report", str(out))
    assert code == 0 and json.loads(stdout.splitlines()[-1])["skipped_lines"] == 1
    code, stdout, err = cli(capsys, "replay", str(out))
    assert code == 0 and "Traceback" not in err


# -- I/O failures -----------------------------------------------------------------------------------


def test_full_disk_exits_1_keeps_what_was_written_and_resumes(tmp_path, capsys, done_dir, monkeypatch):
    import eval.store

    out = tmp_path / "out"
    cfg = cfg_file(tmp_path, arith_cfg())
    real_write, calls = os.write, {"n": 0}

    def full_disk(fd, data):
        # os.write is patched for the whole process: count only appends to this run's .jsonl files
        target = os.readlink(f"/proc/self/fd/{fd}") if os.path.exists(f"/proc/self/fd/{fd}") else ""
        if not (target.startswith(str(out)) and target.endswith(".jsonl")):
            return real_write(fd, data)
        calls["n"] += 1
        if calls["n"] == 4:  # the 4th append: half of it reaches the disk, then the disk is full
            real_write(fd, bytes(data[: len(data) // 2]))
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_write(fd, data)

    monkeypatch.setattr(eval.store.os, "write", full_disk)
    code, stdout, err = cli(capsys, "sweep", cfg, "--out", str(out))
    monkeypatch.undo()
    assert code == 1 and not stdout
    one_error(err, "I/O failure: No space left on device")
    assert (out / "results.jsonl").exists() and not (out / "config.json.tmp").exists()
    code, _, err = cli(capsys, "sweep", cfg, "--out", str(out))
    assert code == 0, err

    def records(d: Path) -> list[str]:
        rows = [json.loads(x) for x in (d / "results.jsonl").read_text().splitlines()]
        return sorted(json.dumps({k: v for k, v in r.items() if k != "wall_s"}, sort_keys=True) for r in rows)

    assert records(out) == records(done_dir)
    raw = (out / "results.jsonl").read_bytes()
    assert raw.endswith(b"\n") and all(json.loads(x) for x in raw.splitlines())


def test_read_only_directory_for_report_and_replay(tmp_path, capsys, done_dir, monkeypatch):
    out = copy_of(done_dir, tmp_path)

    def refuse(*a, **k):
        raise PermissionError(errno.EROFS, os.strerror(errno.EROFS))

    # root ignores permission bits, so a read-only mount is simulated where the probe is made
    monkeypatch.setattr(tempfile, "mkdtemp", refuse)
    for argv, fragment in ((("report", str(out)), "report: "), (("replay", str(out)), "replay: ")):
        code, stdout, err = cli(capsys, *argv)
        assert code == 2 and not stdout
        one_error(err, fragment + str(out))
        assert "not writable" in err


@pytest.mark.skipif(IS_ROOT, reason="root ignores permission bits")
def test_read_only_directory_by_permission_bits(tmp_path, capsys, done_dir):
    out = copy_of(done_dir, tmp_path)
    out.chmod(0o500)
    try:
        code, _, err = cli(capsys, "report", str(out))
        assert code == 2
        one_error(err, "not writable")
    finally:
        out.chmod(0o700)


# -- replay of broken directories ---------------------------------------------------------------------


def test_replay_refuses_corrupt_trees_config_and_mixed_datasets(tmp_path, capsys, done_dir):
    out = copy_of(done_dir, tmp_path)
    tree = sorted((out / "trees" / "s").glob("*.jsonl"))[0]
    good_tree = tree.read_bytes()
    with open(tree, "ab") as f:
        f.write(b'{"problem_id": "arith-0-0", "id": "seven", "parent": 0, "depth": 1}\n')
    code, _, err = cli(capsys, "replay", str(out))
    assert code == 2
    one_error(err, f"{tree.name}:")
    tree.write_bytes(good_tree + b'{"problem_id": "arith-0-0", "id": 9, "parent": 77, "depth": 1}\n')
    code, _, err = cli(capsys, "replay", str(out))
    assert code == 2
    one_error(err, "names parent 77")
    tree.write_bytes(good_tree)

    cfg_bytes = (out / "config.json").read_bytes()
    for broken in (b"{not json", b'{"config": {"models": 3}}', b"\xff\xfe", b"[]"):
        (out / "config.json").write_bytes(broken)
        code, _, err = cli(capsys, "replay", str(out))
        assert code == 2
        one_error(err, "config.json: unreadable")
    (out / "config.json").write_bytes(cfg_bytes)

    rec = json.loads((out / "results.jsonl").read_text().splitlines()[0])
    rec.update(dataset="gsm8k", problem_id="gsm8k-0")
    with open(out / "results.jsonl", "a") as f:
        f.write(json.dumps(rec) + "\n")
    code, _, err = cli(capsys, "replay", str(out))
    assert code == 2
    one_error(err, "holds records of dataset 'gsm8k' beside 'arith'")
