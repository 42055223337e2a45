"""Shared row rules of the competition tasks (AIME, AMC): integer golds, ids, the question field.

Why: their public copies agree on little but "a problem text and an integer answer" (AIME 2024 has
`problem` and a string `answer`, AIME 2025 `question`, the AMC set a float `answer` such as 27.0),
so each task names its fields and this module turns a row into a Problem the same way for all.
"""

from __future__ import annotations

from typing import Optional, Sequence

from rebase.errors import BadInput
from rebase.tasks.rules import normalize_number
from rebase.tasks.sources import Row, required
from rebase.types import Problem


def integer_gold(row: Row, key: str = "answer", top: Optional[int] = None) -> str:
    """The row's answer as a plain integer string ("033" -> "33", 27.0 -> "27"); BadInput naming
    the row when it is not an integer (or not in 0..top)."""
    raw = required(row, key)
    n = normalize_number(str(raw))
    if n is None or not n.lstrip("-").isdigit() or (top is not None and not 0 <= int(n) <= top):
        want = f"an integer 0-{top}" if top is not None else "an integer"
        raise BadInput(f"{row[0]}:{row[1]}: field '{key}' is {raw!r}, not {want}")
    return n


def question_of(row: Row, keys: Sequence[str]) -> str:
    """The first of `keys` the row has (copies of one set name the problem text differently)."""
    for k in keys:
        if row[2].get(k) not in (None, ""):
            return str(row[2][k])
    return str(required(row, keys[0]))


def competition_problems(rows: list[Row], dataset: str, keys: Sequence[str], top: Optional[int]) -> list[Problem]:
    """Problems "<dataset>-<id>" (the row's `id` when it has one, else its index) with integer golds."""
    out = []
    for i, row in enumerate(rows):
        rid = row[2].get("id")
        out.append(
            Problem(
                id=f"{dataset}-{rid if rid not in (None, '') else i}",
                question=question_of(row, keys),
                gold=integer_gold(row, top=top),
                dataset=dataset,
            )
        )
    return out
