"""The competition tasks AIME 2024, AIME 2025 and AMC 2023 (rebase/tasks/aime.py, amc.py): loading
from the committed fixtures in their hub copies' field layouts, integer golds, ids, the AMC year
filter, bad rows, the hub split each task asks for, and grading with the MATH rules (boxed answers,
math-verify) through the dataset-name API.

    python -m pytest -q tests/test_competition_tasks.py
"""

from __future__ import annotations

import json

import pytest

from rebase.config import DatasetConfig, RunConfig
from rebase.errors import BadInput
from rebase.tasks.base import task_of
from rebase.tasks.datasets import load_problems
from rebase.tasks.grading import answer_key, extract_answer, grade
from rebase.tasks.prompts import PromptFormat


def cfg(name, path, **kw):
    return DatasetConfig(name=name, path=str(path), **kw)


def test_aime2024(data_dir):
    probs = load_problems(cfg("aime2024", data_dir / "aime2024/test.jsonl"))
    assert len(probs) == 7 and probs[0].id == "aime2024-60" and probs[0].question.startswith("Every morning Aya")
    assert [p.gold for p in probs] == ["204", "25", "809", "116", "540", "73", "33"]  # "033" -> "33"
    assert all(p.dataset == "aime2024" and p.level is None for p in probs)


def test_aime2025(data_dir):
    probs = load_problems(cfg("aime2025", data_dir / "aime2025/test.jsonl"))
    assert [p.id for p in probs] == [f"aime2025-{i}" for i in range(5)]  # no id field: the row index
    assert [p.gold for p in probs] == ["70", "16", "117", "279", "504"]
    assert probs[0].question.startswith("Find the sum of all integer bases")


def test_amc2023_keeps_only_2023_rows(data_dir):
    probs = load_problems(cfg("amc2023", data_dir / "amc2023/test.jsonl"))
    assert [p.id for p in probs] == ["amc2023-43", "amc2023-44", "amc2023-45", "amc2023-46", "amc2023-47"]
    assert [p.gold for p in probs] == ["27", "4", "8", "18", "9"]  # float answers 27.0 -> "27"
    assert load_problems(cfg("amc2023", data_dir / "amc2023/test.jsonl", limit=2)) == probs[:2]


@pytest.mark.parametrize(
    "name, row, words",
    [
        ("aime2024", {"id": 1, "problem": "p", "answer": "1/2"}, "not an integer 0-999"),
        ("aime2024", {"id": 1, "problem": "p", "answer": "1000"}, "not an integer 0-999"),
        ("aime2025", {"answer": "5"}, "missing required field 'question'"),
        ("amc2023", {"id": 1, "problem": "p", "answer": 2.5, "url": "x/2023_AMC_12B"}, "not an integer"),
        ("amc2023", {"id": 1, "problem": "p", "answer": 3.0, "url": "x/2022_AMC_12B"}, "no row's url names AMC 2023"),
    ],
)
def test_bad_rows_name_the_file(tmp_path, name, row, words):
    p = tmp_path / "bad.jsonl"
    p.write_text(json.dumps(row) + "\n", encoding="utf-8")
    with pytest.raises(BadInput) as e:
        load_problems(cfg(name, p))
    assert str(p) in str(e.value) and words in str(e.value) and "\n" not in str(e.value)


def test_hub_copies_and_their_splits():
    # peer tools' copies; the AIME 2024 and AMC copies publish the contest problems as split "train"
    assert (task_of("aime2024").hub, task_of("aime2024").hub_splits["test"]) == ("HuggingFaceH4/aime_2024", "train")
    assert task_of("aime2025").hub == "opencompass/AIME2025"
    assert task_of("aime2025").hub_configs == ("AIME2025-I", "AIME2025-II")
    assert (task_of("amc2023").hub, task_of("amc2023").hub_splits["test"]) == ("AI-MO/aimo-validation-amc", "train")
    # tests run offline (conftest): the hub is unreachable, and the message says to set dataset.path
    with pytest.raises(BadInput, match=r"hub:HuggingFaceH4/aime_2024: could not load split 'train'.*dataset\.path"):
        load_problems(DatasetConfig(name="aime2024"))


@pytest.mark.parametrize("name", ["aime2024", "aime2025", "amc2023"])
def test_graded_like_math(name):
    text = "We find $m+n=33$.\n\nSo the answer is \\boxed{033}."
    assert extract_answer(text, name) == "033"
    assert grade("033", "33", name) and grade("33.0", "33", name) and grade("\\frac{66}{2}", "33", name)
    assert not grade("34", "33", name) and not grade(extract_answer("The answer is 33.", name), "33", name)
    assert answer_key("033", name) == answer_key("33", name) == answer_key("33", "math500")
    fmt = PromptFormat.from_config(name)
    assert (fmt.step_delimiter, fmt.answer_marker, fmt.style) == ("\n\n", "\\boxed", "instruction")


def test_config_accepts_the_new_names_and_plain_style(data_dir):
    run = RunConfig.model_validate(
        {
            "models": [{"name": "m", "path": "x"}],
            "dataset": {"name": "aime2025", "path": str(data_dir / "aime2025/test.jsonl")},
            "strategies": [{"name": "majority", "budgets": [2]}],
            "prompt": {"style": "plain"},
        }
    )
    assert PromptFormat.from_config(run.dataset.name, run.prompt).style == "plain"
