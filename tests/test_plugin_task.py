"""A third-party dataset is one Task object: registered in DATASETS (in process, or from a
`rebase.plugins` entry point of an installed distribution), it is listed by `rebase ls datasets`
with its docstring's first line, and loading, prompt defaults, answer extraction, grading and vote
keys all follow it through the dataset-name API, like the built-in tasks.

    python -m pytest -q tests/test_plugin_task.py
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from rebase.config import DatasetConfig
from rebase.errors import BadInput
from rebase.registry import DATASETS
from rebase.tasks.base import NumericTask, task_of
from rebase.tasks.datasets import load_problems
from rebase.tasks.grading import answer_key, extract_answer, grade
from rebase.tasks.prompts import PromptFormat
from rebase.tasks.sources import required
from rebase.types import Problem

ROOT = Path(__file__).resolve().parents[1]

PLUGIN = '''"""A third-party dataset: a task whose answers follow "Result:" and whose steps end with ";"."""
import re

from rebase.registry import DATASETS
from rebase.tasks.base import Task
from rebase.tasks.sources import required
from rebase.types import Problem


@DATASETS.register("semicolon_sums")
class SemicolonSums(Task):
    """Sums written with ';' between steps and 'Result:' before the answer."""

    name = "semicolon_sums"
    step_delimiter = ";"
    answer_marker = "Result:"

    def problems(self, rows):
        return [Problem(id=f"ss-{i}", question=str(required(r, "q")), gold=str(required(r, "a")),
                        dataset=self.name) for i, r in enumerate(rows)]

    def extract_answer(self, text):
        m = re.findall(r"Result:\\s*(-?\\d+)", text)
        return m[-1] if m else None

    def grade(self, answer, gold):
        return answer is not None and answer.lstrip("0") == gold.lstrip("0")

    def answer_key(self, answer):
        return (answer or "").lstrip("0")
'''


class Countdown(NumericTask):
    """Count-down puzzles (a test task): numeric answers, steps separated by ' | '."""

    name = "countdown_test"
    step_delimiter = " | "

    def problems(self, rows):
        return [
            Problem(id=f"cd-{r[1]}", question=str(required(r, "q")), gold=str(required(r, "a")), dataset=self.name)
            for r in rows
        ]


def test_registered_task_drives_every_rule(tmp_path):
    DATASETS.register("countdown_test")(Countdown)
    try:
        data = tmp_path / "cd.jsonl"
        data.write_text(json.dumps({"q": "10 - 3?", "a": "7"}) + "\n", encoding="utf-8")
        probs = load_problems(DatasetConfig(name="countdown_test", path=str(data)))
        assert [(p.id, p.gold, p.dataset) for p in probs] == [("cd-1", "7", "countdown_test")]
        assert extract_answer("10 - 3 = 7 | The answer is 7.", "countdown_test") == "7"
        assert grade("7.0", "7", "countdown_test") and answer_key("7.0", "countdown_test") == "7"
        fmt = PromptFormat.from_config("countdown_test")
        assert (fmt.step_delimiter, fmt.answer_marker) == (" | ", "The answer is")
        assert task_of("countdown_test").name == "countdown_test"
        assert "Count-down puzzles" in DATASETS.describe()["countdown_test"]
        with pytest.raises(BadInput, match="has no hub copy"):
            load_problems(DatasetConfig(name="countdown_test"))
    finally:
        DATASETS.unregister("countdown_test")


def test_entry_point_task_is_listed_and_used(tmp_path):
    site = tmp_path / "site"
    (site / "semicolon_plugin").mkdir(parents=True)
    (site / "semicolon_plugin" / "__init__.py").write_text(PLUGIN, encoding="utf-8")
    info = site / "semicolon_plugin-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: semicolon-plugin\nVersion: 0.1\n", encoding="utf-8")
    (info / "entry_points.txt").write_text("[rebase.plugins]\nsemicolon_plugin = semicolon_plugin\n", encoding="utf-8")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(site), str(ROOT)]), OMP_NUM_THREADS="1")
    r = subprocess.run(
        [sys.executable, "-m", "rebase.cli", "ls", "datasets"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr
    listed = json.loads(r.stdout.strip().splitlines()[-1])["datasets"]
    assert listed["semicolon_sums"] == "Sums written with ';' between steps and 'Result:' before the answer."
    assert {"gsm8k", "math500", "aime2024", "aime2025", "amc2023", "arith"} <= set(listed)
    (tmp_path / "s.jsonl").write_text(json.dumps({"q": "2 + 2?", "a": "4"}) + "\n", encoding="utf-8")
    code = (
        "from rebase.config import DatasetConfig; from rebase.tasks.datasets import load_problems; "
        "from rebase.tasks.grading import extract_answer, grade; from rebase.tasks.prompts import PromptFormat; "
        "p = load_problems(DatasetConfig(name='semicolon_sums', path='s.jsonl'))[0]; "
        "a = extract_answer('2 + 2 = 4; Result: 04', 'semicolon_sums'); f = PromptFormat.from_config('semicolon_sums'); "
        "print(p.id, p.gold, a, grade(a, p.gold, 'semicolon_sums'), f.step_delimiter, f.answer_marker)"
    )
    r = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["ss-0", "4", "04", "True", ";", "Result:"]
