"""AMC 2023: the 40 AMC 12 (2023 A and B) problems peer tools evaluate as "AMC23", with the
multiple-choice options removed and integer answers.

Hub copy: AI-MO/aimo-validation-amc (split train; rows `id`, `problem`, `answer` as a float such
as 27.0, `url`), which also holds AMC 12 2022: rows whose `url` does not name 2023 are dropped, in a
local `path:` file too (a row without `url` is kept). Ids are "amc2023-<id>" (else the row index);
`question` is read when a row has no `problem` (the math-ai/amc23 layout). Answers: the LaTeX
rules like MATH (\\boxed{}, math-verify); a gold that is not an integer is a BadInput naming the row.
"""

from __future__ import annotations

from rebase.errors import BadInput
from rebase.registry import DATASETS
from rebase.tasks.base import MathTask
from rebase.tasks.competition import competition_problems
from rebase.tasks.sources import Row
from rebase.types import Problem


@DATASETS.register("amc2023")
class AMC2023(MathTask):
    """AMC 12 2023, 40 problems with integer answers (AI-MO/aimo-validation-amc's 2023 rows, or `path:` JSONL)."""

    name = "amc2023"
    hub = "AI-MO/aimo-validation-amc"
    hub_splits = {"test": "train"}  # the hub copy's only split holds the contest problems
    year = "2023"

    def problems(self, rows: list[Row]) -> list[Problem]:
        kept = [r for r in rows if r[2].get("url") is None or self.year in str(r[2]["url"])]
        if not kept:
            raise BadInput(f"{rows[0][0]}: no row's url names AMC {self.year}")
        return competition_problems(kept, self.name, ("problem", "question"), None)
