"""Under CI (`CI=true`), a skipped real-engine, real-server or browser test is a failure.

Why: these tests skip when their engine is missing (`importorskip("vllm")` in a session fixture,
no Chromium binary), and a green run then hides that the real thing was never exercised. Locally a
skip stays a skip; in CI the same skip fails the run, naming the test and the skip's reason.

Markers: `real_engine` (an in-process vLLM engine or a real model package), `real_server` (a real
`vllm` OpenAI-compatible server), `browser` (headless Chromium). Loaded by tests/conftest.py; on
its own: `pytest -p ci_skips` with tests/ on the path.
"""

from __future__ import annotations

import os

import pytest

CI_MARKERS = {
    "real_engine": "needs a real inference engine (vLLM in process, or a real model package)",
    "real_server": "needs a real vLLM OpenAI-compatible server",
    "browser": "needs headless Chromium (make chromium)",
}


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() == "true"


def pytest_configure(config: pytest.Config) -> None:
    for name, doc in CI_MARKERS.items():
        config.addinivalue_line("markers", f"{name}: {doc}; a skip is a failure under CI=true")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    outcome = yield
    rep = outcome.get_result()
    if not (rep.skipped and in_ci()) or hasattr(rep, "wasxfail"):
        return
    marks = [m for m in CI_MARKERS if item.get_closest_marker(m) is not None]
    if not marks:
        return
    reason = rep.longrepr[2] if isinstance(rep.longrepr, tuple) and len(rep.longrepr) == 3 else str(rep.longrepr)
    reason = reason.removeprefix("Skipped: ")
    rep.outcome = "failed"
    rep.longrepr = f"{item.nodeid} ({', '.join(marks)}) was skipped under CI=true: {reason}"
