"""Answer extraction, grading and vote keys by dataset name: `extract_answer(text, dataset)`,
`grade(answer, gold, dataset)`, `answer_key(answer, dataset)`.

Why: strategies form candidates, aggregators group votes and the evaluator grades records knowing
only the dataset's name; these three ask the dataset's registered task (rebase/tasks/base.py), so
"valid", "correct" and "the same answer" mean what that task says, everywhere. The rule families
themselves live in rebase/tasks/rules.py:

- numeric datasets (gsm8k, arith): the first number after the LAST "The answer is"; failing that,
  the last \\boxed{...}; failing that the number after the last "####". No "last number in the
  text" fallback. Numbers compare exactly (relative tolerance 1e-6).
- MATH-style datasets (math, math500, aime2024, aime2025, amc2023, and any dataset no task
  describes): the last \\boxed{...} (or \\fbox{...}); an exact canonical-string match, then
  math-verify.
- `answer_key`: the canonical string equivalent answers share ("$1,000.00" and "1000";
  "\\dfrac{1}{2}" and "\\frac12"). None -> "".

None from `extract_answer` = nothing extractable: the candidate is invalid and never wins a vote.
`grade` never raises.

    from rebase.tasks.grading import extract_answer, grade
    ans = extract_answer("... so 3 + 4 = 7.\\nThe answer is 7.", "gsm8k")   # "7"
    grade(ans, "7", "gsm8k")                                                 # True
"""

from __future__ import annotations

from typing import Optional

from rebase.tasks.base import DEFAULT, Task, find_task
from rebase.tasks.rules import MAX_VERIFY_CHARS, REL_TOL, VERIFY_TIMEOUT_S, last_boxed, normalize_number, verify_latex

__all__ = [
    "MAX_VERIFY_CHARS",
    "REL_TOL",
    "VERIFY_TIMEOUT_S",
    "answer_key",
    "extract_answer",
    "grade",
    "last_boxed",
    "normalize_number",
    "task_rules",
    "verify_latex",
]


def task_rules(dataset: str) -> Task:
    """The task whose rules apply to `dataset`: its registered task, else the defaults."""
    return find_task(dataset) or DEFAULT


def extract_answer(text: str, dataset: str) -> Optional[str]:
    """The final answer written in `text`, or None (see the module docstring for the rules)."""
    if not isinstance(text, str) or not text:
        return None
    return task_rules(dataset).extract_answer(text)


def grade(answer: Optional[str], gold: str, dataset: str) -> bool:
    """Whether `answer` (as returned by extract_answer) matches `gold`; never raises."""
    if not isinstance(answer, str) or not answer.strip() or not isinstance(gold, str):
        return False
    return task_rules(dataset).grade(answer, gold)


def answer_key(answer: Optional[str], dataset: str) -> str:
    """Canonical vote key of `answer` under `dataset`'s rules; None -> ""."""
    if answer is None:
        return ""
    return task_rules(dataset).answer_key(answer)
