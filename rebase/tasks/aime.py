"""AIME 2024 and AIME 2025: the American Invitational Mathematics Examination, 30 problems a year
(contests I and II, 15 each), every answer an integer 0-999.

| name     | hub copy (peer tools use it)                      | rows                               |
|----------|---------------------------------------------------|------------------------------------|
| aime2024 | HuggingFaceH4/aime_2024, split train              | `id`, `problem`, `answer`, `solution`, `url`, `year` |
| aime2025 | opencompass/AIME2025, configs AIME2025-I and -II, split test | `question`, `answer`     |

Ids are "<name>-<id>" (the row's `id`, else its index); a local `path:` file may use either
layout (`problem` or `question`). Answers: the LaTeX rules like MATH (\\boxed{}, math-verify), so
"\\boxed{033}" and "33" agree; a gold that is not an integer 0-999 is a BadInput naming the row.
"""

from __future__ import annotations

from rebase.registry import DATASETS
from rebase.tasks.base import MathTask
from rebase.tasks.competition import competition_problems
from rebase.tasks.sources import Row
from rebase.types import Problem

TOP = 999  # AIME answers are integers 000-999


@DATASETS.register("aime2024")
class AIME2024(MathTask):
    """AIME 2024 I and II, 30 problems, integer answers 0-999 (HuggingFaceH4/aime_2024, or `path:` JSONL)."""

    name = "aime2024"
    hub = "HuggingFaceH4/aime_2024"
    hub_splits = {"test": "train"}  # the hub copy's only split holds the contest problems

    def problems(self, rows: list[Row]) -> list[Problem]:
        return competition_problems(rows, self.name, ("problem", "question"), TOP)


@DATASETS.register("aime2025")
class AIME2025(MathTask):
    """AIME 2025 I and II, 30 problems, integer answers 0-999 (opencompass/AIME2025, or `path:` JSONL)."""

    name = "aime2025"
    hub = "opencompass/AIME2025"
    hub_configs = ("AIME2025-I", "AIME2025-II")

    def problems(self, rows: list[Row]) -> list[Problem]:
        return competition_problems(rows, self.name, ("question", "problem"), TOP)
