"""GSM8K (Cobbe et al. 2021): grade-school word problems with numeric answers.

Rows: `question`, and `answer` holding the reference solution ending in "#### <number>" (the gold,
thousands commas removed). Ids are "gsm8k-<row index>". Hub copy: openai/gsm8k, config "main".
Answers: the numeric rules (rebase/tasks/rules.py), one step per line, "The answer is N".
"""

from __future__ import annotations

from rebase.errors import BadInput
from rebase.registry import DATASETS
from rebase.tasks.base import NumericTask
from rebase.tasks.sources import Row, required
from rebase.types import Problem


@DATASETS.register("gsm8k")
class GSM8K(NumericTask):
    """GSM8K grade-school word problems (openai/gsm8k, or `path:` JSONL with question/answer)."""

    name = "gsm8k"
    hub = "openai/gsm8k"
    hub_configs = ("main",)

    def problems(self, rows: list[Row]) -> list[Problem]:
        out = []
        for i, row in enumerate(rows):
            answer = str(required(row, "answer"))
            if "####" not in answer:
                raise BadInput(f"{row[0]}:{row[1]}: field 'answer' has no '#### <number>' gold marker")
            gold = answer.rsplit("####", 1)[1].strip().replace(",", "")
            if not gold:
                raise BadInput(f"{row[0]}:{row[1]}: field 'answer' has nothing after '####'")
            out.append(Problem(id=f"gsm8k-{i}", question=str(required(row, "question")), gold=gold, dataset=self.name))
        return out
