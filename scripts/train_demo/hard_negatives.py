"""Hard negatives for the demo PRM: reference solutions with one step broken the way the policies
break them.

Why: a step PRM learns to verify only the mistakes it is shown. The demo policies' wrong samples go
wrong almost always on an arithmetic slip in a correctly copied line (their cards' `slip_share`),
and at temperature 0.7 a large policy makes few of them, so policy samples alone hold too few
negatives next to the right answer. Here each slip is made on purpose: a result off by a little
(one, two, ten, a changed or swapped digit), a wrongly copied operand or operator, or a wrong final
answer; the steps after it carry on correctly from the wrong value, as a policy would. Labels come
from `rebase.tasks.arith.check_steps`, never from how the slip was made.

    rows = corrupted_rows(problems, seed=3)   # [(question, steps, labels)], one broken step each
"""

from __future__ import annotations

import random
from typing import Iterable, Optional

from rebase.tasks.arith import apply_op, check_steps, solve
from rebase.types import Problem

KINDS = ("result", "result", "result", "operand", "operand", "operator", "answer")  # slips dominate


def next_value(a: int, sym: str, b: int) -> Optional[int]:
    """a sym b by arith's rule (rebase/tasks/arith.py `apply_op`); None where the chain cannot go on
    (an inexact division or a negative result)."""
    out = apply_op(a, sym, b)
    return out if out is not None and out >= 0 else None


def slip(x: int, rng: random.Random) -> int:
    """A near miss of x: off by 1, 2 or 10, another last digit, two digits swapped, or any one digit
    changed (the policies also slip in the tens and hundreds: 65 + 14 = 89, 79 + 16 = 195); never x,
    never < 0."""
    for _ in range(20):
        kind = rng.randrange(6)
        if kind == 0:
            y = x + rng.choice((-1, 1))
        elif kind == 1:
            y = x + rng.choice((-2, 2, -10, 10))
        elif kind == 2:
            y = x - x % 10 + rng.randrange(10)
        elif kind == 3 and x >= 10:
            s = str(x)
            i = rng.randrange(len(s) - 1)
            y = int(s[:i] + s[i + 1] + s[i] + s[i + 2 :])
        elif kind == 4:
            y = x + rng.randint(-9, 9)
        else:
            s = str(x)
            i = rng.randrange(len(s))
            y = int(s[:i] + rng.choice([d for d in "0123456789" if d != s[i]]) + s[i + 1 :])
        if y != x and y >= 0:
            return y
    return x + 1


def corrupted_steps(problem: Problem, rng: random.Random) -> list[str]:
    """The reference steps of `problem` with one step broken (chosen at random, the answer line
    included) and the rest continued from the broken value; cut short where it cannot continue."""
    n = len(solve(problem.question))
    k = rng.randrange(n + 1)
    return broken_steps(problem, {k: "answer" if k == n else rng.choice(KINDS[:-1])}, rng)


def slipped_steps(problem: Problem, rng: random.Random, rate: float) -> list[str]:
    """The reference steps with every line (the answer line included) broken independently with
    probability `rate`, each line computed from the previous line as written."""
    n = len(solve(problem.question))
    kinds = {k: "answer" if k == n else rng.choice(KINDS[:-1]) for k in range(n + 1) if rng.random() < rate}
    return broken_steps(problem, kinds, rng)


def broken_steps(problem: Problem, kinds: dict[int, str], rng: random.Random) -> list[str]:
    """The steps of `problem` with line k broken the way kinds[k] says ("result", "operand",
    "operator", "answer"), every line computed from the one before it as written; cut short where
    a line would need a negative or inexact result."""
    chain = solve(problem.question)
    steps: list[str] = []
    cur = chain[0][0]
    for i, (_, sym, b, _) in enumerate(chain):
        a, kind = cur, kinds.get(i)
        if kind == "operand":
            if rng.random() < 0.5:
                a = slip(a, rng)
            else:
                b = slip(b, rng)
        elif kind == "operator":
            sym = rng.choice([s for s in "+-*" if s != sym])
        c = next_value(a, sym, b)
        if c is None:  # the broken line would need a negative or inexact result: stop here
            break
        if kind == "result":
            c = slip(c, rng)
        steps.append(f"{a} {sym} {b} = {c}")
        cur = c
    else:
        steps.append(f"The answer is {slip(cur, rng) if kinds.get(len(chain)) == 'answer' else cur}")
    return steps


def corrupted_rows(problems: Iterable[Problem], seed: int) -> list[tuple[str, list[str], list[bool]]]:
    """(question, steps, labels) per problem; a corruption that happens to be right is kept as a
    positive (labels decide, not intent)."""
    rng = random.Random(f"hard-negatives/{seed}")
    rows = []
    for p in problems:
        steps = corrupted_steps(p, rng)
        if steps:
            rows.append((p.question, steps, check_steps(p.question, steps)))
    return rows
