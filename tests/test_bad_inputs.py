"""Every bad input gets exit 2, one clear stderr line naming the culprit, and nothing written.

Why: a sweep that dies an hour in on a typo, or prints a traceback the user must decode, or leaves a
half-made output directory behind that the next `rebase sweep` trips over, costs more than any
search bug. The corpus in tests/bad_inputs/ (cases.yaml is the index) covers malformed and
non-mapping YAML, python-object tags, unknown keys at every level, wrong types, bad budgets, unknown
registry names, missing or unloadable model / PRM paths, a PRM tag that is not one token, broken data
files, bad --set overrides and unusable output paths. Each case runs the real CLI in a subprocess.

Output paths that cannot be written: a permission-bits case (chmod 0o500) proves nothing as root,
since root ignores those bits, so it is skipped there; the cases "a path under a regular file" and
"/proc/<name>" are refused for every user, and the runner checks writability by trying (a probe
directory made and removed at once), not with os.access (which is always True for root).

    OMP_NUM_THREADS=1 .venv/bin/python -m pytest -q tests/test_bad_inputs.py            # fast sample
    OMP_NUM_THREADS=1 .venv/bin/python -m pytest -q -m slow tests/test_bad_inputs.py    # whole corpus
"""

from __future__ import annotations

import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
CORPUS = Path(__file__).resolve().parent / "bad_inputs"
CASES = yaml.safe_load((CORPUS / "cases.yaml").read_text(encoding="utf-8"))
IS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0


def case_id(c: dict) -> str:
    extra = "-".join(str(a) for a in c.get("args", []) if not str(a).startswith("--"))
    return "-".join(x for x in (Path(c["file"]).stem, extra, c.get("out", "")) if x)


def substitute(text: str, tiny: Path, data: Path) -> str:
    return text.replace("{TINY}", str(tiny)).replace("{DATA}", str(data)).replace("{CORPUS}", str(CORPUS))


def prepare(case: dict, work: Path, tiny: Path, data: Path) -> tuple[list[str], Path, bool]:
    """Write the case's config into `work`; return (argv, out path, whether out existed before)."""
    work.mkdir(parents=True)
    src = CORPUS / case["file"]
    cfg = work / case["file"]
    if src.exists():
        raw = src.read_bytes()
        try:
            raw = substitute(raw.decode("utf-8"), tiny, data).encode("utf-8")
        except UnicodeDecodeError:
            pass  # the not-UTF-8 case: keep its bytes as they are
        cfg.write_bytes(raw)
    out = work / "out"
    kind = case.get("out", "fresh")
    if kind == "file":
        out.write_text("a file where the output directory should go\n")
    elif kind == "under_file":
        (work / "plain").write_text("x\n")
        out = work / "plain" / "out"
    elif kind == "proc":
        out = Path("/proc") / f"rebase-out-{os.getpid()}"
    elif kind == "readonly_dir":
        ro = work / "ro"
        ro.mkdir()
        ro.chmod(0o500)
        out = ro / "out"
    args = [substitute(str(a), tiny, data) for a in case.get("args", [])]
    argv = [sys.executable, "-m", "rebase.cli", "run", str(cfg), *args, "--out", str(out), "--no-progress"]
    return argv, out, out.exists()


def run_case(case: dict, work: Path, tiny: Path, data: Path) -> tuple[dict, subprocess.CompletedProcess, Path, bool]:
    argv, out, existed = prepare(case, work, tiny, data)
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT), HF_HUB_OFFLINE="1")
    proc = subprocess.run(argv, cwd=work, env=env, capture_output=True, text=True, timeout=180)
    return case, proc, out, existed


def check(case: dict, proc: subprocess.CompletedProcess, out: Path, existed: bool, work: Path) -> list[str]:
    """All the ways a case can fail, as messages (empty: it passed)."""
    bad = []
    lines = proc.stderr.splitlines()
    if proc.returncode != 2:
        bad.append(f"exit {proc.returncode}, expected 2")
    if len(lines) != 1:
        bad.append(f"stderr has {len(lines)} lines, expected 1")
    if "Traceback" in proc.stderr:
        bad.append("traceback on stderr")
    if lines and not lines[-1].startswith("error: "):
        bad.append("stderr does not start with 'error: '")
    if case["fragment"] not in proc.stderr:
        bad.append(f"missing fragment {case['fragment']!r}")
    if proc.stdout.strip():
        bad.append("stdout is not empty (no summary on bad input)")
    if not existed and out.exists():
        bad.append(f"{out} was created")
    if list(work.rglob("results.jsonl")) or list(work.rglob("config.json")):
        bad.append("results.jsonl or config.json was written")
    if list(work.rglob(".rebase-probe-*")):
        bad.append("the writability probe was left behind")
    return [f"{case_id(case)}: {b}\n    stderr: {proc.stderr.strip()[:400]}" for b in bad]


def run_cases(cases: list[dict], tmp_path: Path, tiny: Path, data: Path) -> None:
    todo = []
    for i, c in enumerate(cases):
        if c.get("out") == "readonly_dir" and IS_ROOT:
            continue  # root bypasses permission bits; the under_file and proc cases cover it
        todo.append((c, tmp_path / f"c{i:02d}"))
    # two at a time: each case is a fresh interpreter (imports dominate) on a small shared machine
    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(lambda cw: (*run_case(cw[0], cw[1], tiny, data), cw[1]), todo))
    problems = []
    for case, proc, out, existed, work in results:
        problems += check(case, proc, out, existed, work)
    try:
        assert not problems, "\n".join(problems)
    finally:
        for _, work in todo:  # give the read-only folders back their bits so tmp_path can be removed
            for d in work.rglob("ro"):
                d.chmod(0o700)


def test_corpus_is_large_and_well_formed():
    assert len(CASES) >= 30
    for c in CASES:
        assert set(c) <= {"file", "fragment", "args", "out", "fast"}, c
        assert c["fragment"].strip(), c
        assert (CORPUS / c["file"]).exists() or c["file"].startswith("no_such"), c
    assert 5 <= sum(bool(c.get("fast")) for c in CASES) <= 8


def test_bad_inputs_fast_sample(tmp_path, tiny_dir, data_dir):
    run_cases([c for c in CASES if c.get("fast")], tmp_path, tiny_dir, data_dir)


@pytest.mark.slow
def test_bad_inputs_whole_corpus(tmp_path, tiny_dir, data_dir):
    run_cases([c for c in CASES if not c.get("fast")], tmp_path, tiny_dir, data_dir)


def test_checks_are_able_to_fail(tmp_path):
    """The harness itself must reject a run that succeeded, wrote files, or printed a traceback."""
    case = {"file": "ok.yaml", "fragment": "unknown key"}
    out = tmp_path / "out"
    out.mkdir()
    (out / "results.jsonl").write_text("{}\n")
    ran = subprocess.CompletedProcess(
        [], 0, stdout='{"records": 1}\n', stderr="Traceback (most recent call last):\n  boom\n"
    )
    problems = " ".join(check(case, ran, out, False, tmp_path))
    for why in ("expected 2", "2 lines", "traceback", "missing fragment", "stdout", "was created", "was written"):
        assert why in problems, why
    good = subprocess.CompletedProcess([], 2, stdout="", stderr="error: x.yaml: foo: unknown key\n")
    assert check(case, good, tmp_path / "none", False, tmp_path / "none") == []
