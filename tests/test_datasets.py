"""Dataset loaders: row counts, ids, golds, levels/subjects, the slice options, and every bad-input
case (each a BadInput naming the file, and the line where there is one).

Run: .venv/bin/pytest -q tests/test_datasets.py
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from rebase.tasks.datasets import load_problems
from rebase.config import DatasetConfig
from rebase.errors import BadInput

ROOT = Path(__file__).resolve().parents[1]


def cfg(name, path, **kw):
    return DatasetConfig(name=name, path=str(path), **kw)


def test_gsm8k(data_dir):
    probs = load_problems(cfg("gsm8k", data_dir / "gsm8k/test.jsonl"))
    assert len(probs) == 300  # the fixture: the first 300 rows of the test split
    assert [p.id for p in probs[:2]] == ["gsm8k-0", "gsm8k-1"] and probs[-1].id == "gsm8k-299"
    assert probs[0].gold == "18" and probs[0].question.startswith("Janet")
    # commas are stripped from golds such as "2,125"; every gold is a plain number
    assert all(p.gold.lstrip("-").replace(".", "", 1).isdigit() for p in probs)
    assert "2125" in {p.gold for p in probs}
    assert len({p.id for p in probs}) == 300 and all(p.dataset == "gsm8k" for p in probs)


def test_math500(data_dir):
    probs = load_problems(cfg("math500", data_dir / "math500/test.jsonl"))
    assert len(probs) == 100 and len({p.id for p in probs}) == 100
    assert probs[0].id == "test/precalculus/807.json"
    assert probs[0].gold == "\\left( 3, \\frac{\\pi}{2} \\right)"
    assert probs[0].level == 2 and probs[0].subject == "Precalculus"
    assert {p.level for p in probs} == {1, 2, 3, 4, 5}


def test_math(data_dir):
    probs = load_problems(cfg("math", data_dir / "math/test.jsonl"))
    assert len(probs) == 47 and probs[0].id == "math-0" and probs[-1].id == "math-4999"
    assert probs[0].gold == "2" and probs[0].level == 3 and probs[0].subject == "Algebra"
    assert probs[2].gold == "\\dfrac{9}{7}"  # nested braces inside \boxed{...}
    assert probs[-1].gold.startswith("\\begin{pmatrix}")
    assert {p.level for p in probs} == {1, 2, 3, 4, 5}
    assert len({p.subject for p in probs}) == 7


def test_levels_sample_limit(data_dir):
    path = data_dir / "math500/test.jsonl"
    hard = load_problems(cfg("math500", path, levels=[4, 5]))
    assert hard and {p.level for p in hard} == {4, 5}
    assert load_problems(cfg("math500", path, limit=3)) == load_problems(cfg("math500", path))[:3]
    a = load_problems(cfg("math500", path, sample=50, sample_seed=1))
    b = load_problems(cfg("math500", path, sample=50, sample_seed=1))
    c = load_problems(cfg("math500", path, sample=50, sample_seed=2))
    assert [p.id for p in a] == [p.id for p in b] != [p.id for p in c]
    assert len({p.id for p in a}) == 50
    # limit on a sample is the sample's prefix, and levels apply before sampling
    assert load_problems(cfg("math500", path, sample=50, sample_seed=1, limit=10)) == a[:10]
    mixed = load_problems(cfg("math500", path, levels=[1], sample=20, limit=5))
    assert len(mixed) == 5 and {p.level for p in mixed} == {1}
    assert len(load_problems(cfg("math500", path, sample=10_000))) == 100  # capped at what exists


def test_arith_is_registered_lazily():
    # a fresh interpreter, so no other test can have imported rebase.tasks.arith already
    code = (
        "import sys; from rebase.registry import DATASETS; DATASETS.check('arith'); "
        "assert 'rebase.tasks.datasets' in sys.modules and 'rebase.tasks.arith' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


def _write(tmp_path, name, content: bytes | str):
    p = tmp_path / name
    p.write_bytes(content if isinstance(content, bytes) else content.encode())
    return p


GOOD = json.dumps({"question": "1+1?", "answer": "1+1=2\n#### 2"})


@pytest.mark.parametrize(
    "content, where, words",
    [
        ("", "", "empty"),
        ("\n  \n", "", "empty"),
        (GOOD + "\n" + '{"question": "q", "answer": ' + "\n", ":2", "not valid JSON"),
        (GOOD + "\n[1, 2]\n", ":2", "JSON object"),
        (GOOD + "\n" + json.dumps({"question": "q"}) + "\n", ":2", "'answer'"),
        (GOOD + "\n" + json.dumps({"answer": "#### 3"}) + "\n", ":2", "'question'"),
        (GOOD + "\n" + json.dumps({"question": "q", "answer": "no marker"}) + "\n", ":2", "####"),
        (GOOD.encode() + b"\n" + b'{"question": "\xff", "answer": "#### 1"}\n', ":2", "UTF-8"),
    ],
)
def test_bad_gsm8k_files(tmp_path, content, where, words):
    p = _write(tmp_path, "bad.jsonl", content)
    with pytest.raises(BadInput) as e:
        load_problems(cfg("gsm8k", p))
    msg = str(e.value)
    assert f"{p}{where}" in msg and words in msg and "\n" not in msg


def test_bad_math_files(tmp_path):
    row = {"problem": "p", "level": "Level 2", "type": "Algebra", "solution": "so $\\boxed{4}$"}
    ok = _write(tmp_path, "ok.jsonl", json.dumps(row) + "\n")
    assert load_problems(cfg("math", ok))[0].gold == "4"
    bad = _write(tmp_path, "nobox.jsonl", json.dumps(row) + "\n" + json.dumps({**row, "solution": "no box"}))
    with pytest.raises(BadInput, match=r"nobox\.jsonl:2: .*boxed"):
        load_problems(cfg("math", bad))
    m500 = _write(tmp_path, "m500.jsonl", json.dumps({"problem": "p", "answer": "4", "level": 1}))
    with pytest.raises(BadInput, match=r"m500\.jsonl:1: missing required field 'unique_id'"):
        load_problems(cfg("math500", m500))


def test_missing_file_and_empty_filter(tmp_path, data_dir):
    missing = tmp_path / "nope.jsonl"
    with pytest.raises(BadInput, match=r"nope\.jsonl: dataset file not found"):
        load_problems(cfg("gsm8k", missing))
    with pytest.raises(BadInput, match=r"gsm8k/test\.jsonl: dataset\.levels \[3\] left no problems"):
        load_problems(cfg("gsm8k", data_dir / "gsm8k/test.jsonl", levels=[3]))
    with pytest.raises(BadInput, match=r"left no problems \(levels present: \[1, 2, 3, 4, 5\]\)"):
        load_problems(cfg("math500", data_dir / "math500/test.jsonl", levels=[9]))


def test_hub_unreachable_says_set_path():
    # tests run with HF_DATASETS_OFFLINE=1 (conftest), so the hub cannot be reached
    with pytest.raises(BadInput, match=r"hub:openai/gsm8k: .*set dataset\.path"):
        load_problems(DatasetConfig(name="gsm8k"))
