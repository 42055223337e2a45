"""The package works outside its checkout: a non-editable `pip install .` into a fresh virtualenv,
then `rebase demo --help` and a one-problem demo run from an unrelated directory.

The fresh environment gets the already-installed dependencies through a .pth file (no network),
but rebase itself only from the built wheel: a file the wheel forgot (the demo config, a model, a
package without __init__) fails here even though it works from the source tree.

    python -m pytest -q -m slow tests/test_install.py     # about a minute
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def run(cmd: list[str], cwd: Path, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


@pytest.mark.slow
def test_wheel_install_runs_the_demo_outside_the_checkout(tmp_path):
    # a clean copy of the tracked sources, so the build leaves nothing in the checkout
    files = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    src = tmp_path / "src"
    for rel in filter(None, files.decode().split("\0")):
        if (ROOT / rel).is_file():
            (src / rel).parent.mkdir(parents=True, exist_ok=True)
            (src / rel).write_bytes((ROOT / rel).read_bytes())
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env.update(OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1", PIP_NO_INDEX="1", PIP_DISABLE_PIP_VERSION_CHECK="1")
    venv = tmp_path / "venv"
    # no pip of its own: pip and setuptools come with the dependencies below
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=300)
    py, bindir = venv / "bin" / "python", venv / "bin"
    site = Path(
        run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], tmp_path, env).stdout.strip()
    )
    # dependencies (torch, transformers, setuptools, ...) from this interpreter's site-packages
    (site / "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n", encoding="utf-8")
    r = run([str(py), "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", str(src)], tmp_path, env)
    assert r.returncode == 0, r.stderr[-2000:]

    work = tmp_path / "elsewhere"
    work.mkdir()
    r = run([str(py), "-c", "import rebase, eval, strategies, reward_models; print(rebase.__file__)"], work, env)
    assert r.returncode == 0 and r.stdout.strip().startswith(str(site)), (r.stdout, r.stderr[-2000:])
    r = run([str(bindir / "rebase"), "demo", "--help"], work, env)
    assert r.returncode == 0 and "--out" in r.stdout, r.stderr[-2000:]
    r = run(
        [
            str(bindir / "rebase"),
            "demo",
            "--out",
            "demo",
            "--no-progress",
            "--set",
            "dataset.size=1",
            "--set",
            "strategies=[{name: greedy, budgets: [1]}]",
        ],
        work,
        env,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    summary = json.loads(r.stdout.strip().splitlines()[-1])
    assert summary["failed"] == 0 and summary["records"] == 4  # four demo policies x one problem
    assert (work / "demo" / "report" / "index.html").is_file()
    r = run([str(bindir / "rebase"), "ls", "datasets"], work, env)
    assert r.returncode == 0 and "arith" in r.stdout
