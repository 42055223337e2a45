"""MATH (Hendrycks et al. 2021) and MATH-500, its 500-problem test subset (Lightman et al. 2023).

- `math500`: rows `unique_id` (the id), `problem`, `answer` (the gold), `level` (1-5), `subject`.
  Hub copy: HuggingFaceH4/MATH-500.
- `math`: rows `problem`, `solution` (the gold is its last \\boxed{...}), `level` ("Level 3"),
  `type` (the subject), optional `idx`. Ids are "math-<idx>", else "math-<row index>". Hub copy:
  EleutherAI/hendrycks_math, one config per subject, concatenated in the order below (so hub ids
  need not match those of a local file that carries `idx`).

Answers: the LaTeX rules (rebase/tasks/rules.py), \\boxed{}, steps separated by blank lines.
"""

from __future__ import annotations

from rebase.errors import BadInput
from rebase.registry import DATASETS
from rebase.tasks.base import MathTask
from rebase.tasks.rules import last_boxed
from rebase.tasks.sources import Row, level_of, required
from rebase.types import Problem

SUBJECTS = (
    "algebra",
    "counting_and_probability",
    "geometry",
    "intermediate_algebra",
    "number_theory",
    "prealgebra",
    "precalculus",
)


@DATASETS.register("math500")
class MATH500(MathTask):
    """MATH-500 competition problems (HuggingFaceH4/MATH-500, or `path:` JSONL), levels 1-5."""

    name = "math500"
    hub = "HuggingFaceH4/MATH-500"

    def problems(self, rows: list[Row]) -> list[Problem]:
        return [
            Problem(
                id=str(required(r, "unique_id")),
                question=str(required(r, "problem")),
                gold=str(required(r, "answer")).strip(),
                dataset=self.name,
                level=level_of(r[2].get("level")),
                subject=r[2].get("subject"),
            )
            for r in rows
        ]


@DATASETS.register("math")
class MATH(MathTask):
    """The MATH test set (EleutherAI/hendrycks_math, or `path:` JSONL), boxed gold answers."""

    name = "math"
    hub = "EleutherAI/hendrycks_math"
    hub_configs = SUBJECTS

    def problems(self, rows: list[Row]) -> list[Problem]:
        out = []
        for i, row in enumerate(rows):
            gold = last_boxed(str(required(row, "solution")))
            if not gold:
                raise BadInput(f"{row[0]}:{row[1]}: field 'solution' has no complete \\boxed{{...}} answer")
            idx = row[2].get("idx")
            out.append(
                Problem(
                    id=f"math-{idx if idx is not None else i}",
                    question=str(required(row, "problem")),
                    gold=gold,
                    dataset=self.name,
                    level=level_of(row[2].get("level")),
                    subject=row[2].get("type"),
                )
            )
        return out
