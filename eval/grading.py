"""The public grading API for scripts: `eval.grading.extract_answer(text, dataset)`,
`eval.grading.grade(answer, gold, dataset)` and `eval.grading.answer_key(answer, dataset)`.

The rules live with the tasks in the core (`rebase/tasks/grading.py`), where strategies can reach
them without importing the evaluation layer; this module keeps the documented import path stable.

    from eval.grading import extract_answer, grade
    grade(extract_answer("... The answer is 1,000.", "gsm8k"), "1000", "gsm8k")  # True
"""

from rebase.tasks.grading import answer_key, extract_answer, grade

__all__ = ["answer_key", "extract_answer", "grade"]
