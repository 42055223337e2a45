"""The CI rule of tests/ci_skips.py: under CI=true a skipped real-engine / real-server / browser
test fails; other skips, and every skip outside CI, stay skips. And the suite's real-engine,
real-server and browser tests carry those markers.

    OMP_NUM_THREADS=1 .venv/bin/pytest -q tests/test_ci_skips.py
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent

SAMPLE = """
import pytest

@pytest.fixture(scope="session")
def engine():
    pytest.importorskip("no_such_engine_module")

@pytest.mark.real_engine
def test_engine(engine):
    pass

@pytest.mark.browser
def test_browser():
    pytest.skip("no chromium here")

def test_plain_skip():
    pytest.skip("not relevant")

def test_passes():
    pass
"""


def run_sample(tmp_path: Path, ci: str | None) -> subprocess.CompletedProcess:
    (tmp_path / "test_sample.py").write_text(SAMPLE)
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    env["PYTHONPATH"] = str(TESTS)
    if ci is not None:
        env["CI"] = ci
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "ci_skips",
            "-p",
            "no:cacheprovider",
            "--rootdir",
            str(tmp_path),
            "-c",
            os.devnull,
            str(tmp_path / "test_sample.py"),
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_skips_fail_under_ci(tmp_path):
    proc = run_sample(tmp_path, "true")
    assert proc.returncode == 1, proc.stdout
    # a skip in a fixture's setup fails as an error, one in the test's body as a failure
    assert "1 failed, 1 passed, 1 skipped, 1 error" in proc.stdout, proc.stdout
    assert "test_engine (real_engine) was skipped under CI=true" in proc.stdout
    assert "no_such_engine_module" in proc.stdout
    assert "test_browser (browser) was skipped under CI=true: no chromium here" in proc.stdout


def test_skips_stay_skips_outside_ci(tmp_path):
    for ci in (None, "false"):
        proc = run_sample(tmp_path, ci)
        assert proc.returncode == 0, proc.stdout
        assert "1 passed, 3 skipped" in proc.stdout, proc.stdout


@pytest.mark.slow  # collects three heavy modules
def test_real_tests_carry_the_markers():
    env = dict(os.environ, PYTHONPATH=str(TESTS.parent))
    env.pop("CI", None)
    counts = {}
    for mark, files in {
        "real_engine": ["test_backend_vllm.py", "test_prm_vllm.py", "test_config_limits.py"],
        "real_server": ["test_backend_openai.py"],
        "browser": ["test_report.py"],
    }.items():
        proc = subprocess.run(
            [sys.executable, "-m", "pytest", "--collect-only", "-q", "-m", mark, *[str(TESTS / f) for f in files]],
            cwd=TESTS.parent,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        counts[mark] = sum("::" in line for line in proc.stdout.splitlines())
    assert counts["real_engine"] >= 5 and counts["real_server"] >= 2 and counts["browser"] == 1, counts
