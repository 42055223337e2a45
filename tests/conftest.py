"""Shared pytest fixtures: one torch thread, the benchmark fixtures (tests/fixtures/data: small MIT-licensed
slices of GSM8K, MATH-500 and MATH), tiny local models built once per session."""

from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("VLLM_HOST_IP", "127.0.0.1")

import pytest

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "tests" / "fixtures" / "data"


pytest_plugins = ["ci_skips"]  # under CI=true, skipped real-engine / real-server / browser tests fail

# tests that reach a real engine or server through these fixtures carry its marker
FIXTURE_MARKERS = {
    "vllm_gen": "real_engine",
    "vllm_prm": "real_engine",
    "vllm_model_dir": "real_engine",
    "smollm": "real_engine",
    "vllm_server": "real_server",
    "served": "real_server",
}


@pytest.fixture
def fake_answers(monkeypatch):
    """Tree candidates read "The answer is X" with fakes.fake_extract_answer (strategy tests over the
    fakes: `pytestmark = pytest.mark.usefixtures("fake_answers")`)."""
    import strategies.tree as tree_mod
    from fakes import fake_extract_answer

    monkeypatch.setattr(tree_mod, "extract_answer", fake_extract_answer)


def pytest_configure(config):
    import torch

    torch.set_num_threads(1)


def pytest_collection_modifyitems(config, items):
    for item in items:
        for name in sorted({FIXTURE_MARKERS[f] for f in getattr(item, "fixturenames", ()) if f in FIXTURE_MARKERS}):
            item.add_marker(name)


@pytest.fixture(scope="session")
def data_dir() -> Path:
    return DATA


@pytest.fixture(scope="session", params=["fixtures", "full"])
def bench_data(request) -> Path:
    """The benchmark files for the grader agreement tests: the committed slices, and the complete
    test sets when REBASE_FULL_DATA names a folder laid out like tests/fixtures/data."""
    if request.param == "fixtures":
        return DATA
    full = os.environ.get("REBASE_FULL_DATA")
    if not full:
        pytest.skip("whole-set agreement: set REBASE_FULL_DATA to a folder with gsm8k/, math500/ and math/ test.jsonl")
    path = Path(full).expanduser()
    if not (path / "gsm8k" / "test.jsonl").is_file():
        pytest.skip(f"whole-set agreement: REBASE_FULL_DATA={full} has no gsm8k/test.jsonl")
    return path


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory) -> Path:
    """A folder with a tokenizer and tiny random models: llama/ (chat template), qwen2/ (no chat
    template), prm_llama/ (a step_tag-capable causal LM), tokclf/ (token classification head)."""
    from tiny_models import build_model, build_tokenizer

    root = tmp_path_factory.mktemp("tiny")
    build_tokenizer(root / "tok", DATA)
    build_model(root / "llama", root / "tok", "llama", seed=0)
    build_model(root / "qwen2", root / "tok", "qwen2", seed=1, chat=False)
    build_model(root / "prm_llama", root / "tok", "llama", seed=2, hidden=128, layers=1)
    build_model(root / "tokclf", root / "tok", "qwen2", seed=3, layers=1, num_labels=2)
    return root
