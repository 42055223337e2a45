"""The `arith` dataset: seeded multi-step arithmetic word problems with exact step labels.

Why: the embedded demo needs a benchmark that a CPU-trained model of ~100k-1M parameters can
half-solve, whose solutions are step-by-step in the real datasets' format (one step per line, last
"The answer is N"), and whose steps can be labelled right or wrong automatically (Math-Shepherd-
style labels for training and checking a step PRM).

    Question: "Start with 17. Add 25. Multiply by 3. Subtract 8. What is the result?"
    Steps:    ["17 + 25 = 42", "42 * 3 = 126", "126 - 8 = 118", "The answer is 118"]

Levels 1-5 have 2-6 operations and growing numbers: Add/Subtract operands up to 9, 9, 19, 49, 99,
factors/divisors up to 3, 3, 5, 9, 9, results up to 99, 99, 99, 149, 199. Every intermediate
result is a non-negative integer; division is always exact. (Why so small: with two-digit operands
everywhere, ~400k-parameter models trained for 1500 steps copy operands perfectly but get under
10% right; multi-digit arithmetic needs far more training than the demo's CPU budget.)

- `load_arith(cfg)`: `cfg.size` problems "arith-<seed>-<i>" from `cfg.seed` (levels cycle through
  `cfg.levels`, default 1-5). The caller applies `sample` / `limit`.
- `Arith`: the task (rebase/tasks/base.py): numeric answers, one step per line, and the bare
  "plain" prompt the demo models were trained on (`prompt.style` in a config can change it).
- `training_problems(seed, eval_seed=0, ...)`: an endless stream from a disjoint seed space that
  drops every question of the evaluation set (so evaluation problems never appear in training).
- `reference_solution(problem)`, `check_steps(question, steps)`: the gold steps and per-step labels.
"""

from __future__ import annotations

import random
import re
from typing import Iterator, Optional, Sequence

from rebase.tasks.base import NumericTask
from rebase.types import Problem

LEVELS = (1, 2, 3, 4, 5)
RESULT_CAP = {1: 99, 2: 99, 3: 99, 4: 149, 5: 199}  # largest intermediate result
MAX_ADD = {1: 9, 2: 9, 3: 19, 4: 49, 5: 99}  # largest operand of Add / Subtract
MAX_MUL = {1: 3, 2: 3, 3: 5, 4: 9, 5: 9}  # largest factor / divisor
TRAIN_SEED_OFFSET = 1_000_003  # training seeds live far from evaluation seeds

_SYMBOL = {"Add": "+", "Subtract": "-", "Multiply by": "*", "Divide by": "/"}
_OP_RE = re.compile(r"(Add|Subtract|Multiply by|Divide by) (\d+)\.")
_START_RE = re.compile(r"Start with (\d+)\.")
_STEP_RE = re.compile(r"^\s*(-?\d+)\s*([-+*/x×])\s*(-?\d+)\s*=\s*(-?\d+)\s*\.?\s*$")
_ANSWER_RE = re.compile(r"^\s*The answer is\s+(-?\d+)\s*\.?\s*$", re.IGNORECASE)


def apply_op(a: int, sym: str, b: int) -> Optional[int]:
    if sym == "+":
        return a + b
    if sym == "-":
        return a - b
    if sym in ("*", "x", "×"):
        return a * b
    if sym == "/":
        return a // b if b != 0 and a % b == 0 else None
    return None


def _make_ops(rng: random.Random, level: int) -> tuple[int, list[tuple[str, int]]]:
    """Start value and `level + 1` operations whose results stay within [0, cap]."""
    cap = RESULT_CAP[level]
    start = cur = rng.randint(2, min(99, cap))
    ops: list[tuple[str, int]] = []
    for _ in range(level + 1):
        choices = []
        if cap - cur >= 2:
            choices.append("Add")
        if cur >= 3:
            choices.append("Subtract")
        if 2 * cur <= cap:
            choices.append("Multiply by")
        divisors = [d for d in range(2, MAX_MUL[level] + 1) if cur > 0 and cur % d == 0]
        if divisors:
            choices.append("Divide by")
        name = rng.choice(choices)
        if name == "Add":
            b = rng.randint(2, min(MAX_ADD[level], cap - cur))
        elif name == "Subtract":
            b = rng.randint(2, min(MAX_ADD[level], cur - 1))
        elif name == "Multiply by":
            b = rng.randint(2, min(MAX_MUL[level], cap // cur))
        else:
            b = rng.choice(divisors)
        ops.append((name, b))
        cur = apply_op(cur, _SYMBOL[name], b)  # type: ignore[assignment]
    return start, ops


def make_problem(seed: int, i: int, level: int) -> Problem:
    """Problem i of the stream `seed` at `level`; the same (seed, i, level) always gives the same."""
    if level not in RESULT_CAP:
        raise ValueError(f"arith level must be one of {LEVELS}, got {level}")
    rng = random.Random(f"arith/{seed}/{i}/{level}")
    start, ops = _make_ops(rng, level)
    question = " ".join([f"Start with {start}."] + [f"{n} {b}." for n, b in ops] + ["What is the result?"])
    return Problem(
        id=f"arith-{seed}-{i}", question=question, gold=str(solve(question)[-1][3]), dataset="arith", level=level
    )


def parse_question(question: str) -> tuple[int, list[tuple[str, int]]]:
    """(start, [(symbol, operand), ...]) of an arith question; ValueError when it is not one."""
    m = _START_RE.search(question)
    if not m:
        raise ValueError(f"not an arith question: {question!r}")
    ops = [(_SYMBOL[n], int(b)) for n, b in _OP_RE.findall(question)]
    if not ops:
        raise ValueError(f"arith question without operations: {question!r}")
    return int(m.group(1)), ops


def solve(question: str) -> list[tuple[int, str, int, int]]:
    """The exact chain [(a, symbol, b, result), ...] of a question."""
    cur, ops = parse_question(question)
    chain = []
    for sym, b in ops:
        res = apply_op(cur, sym, b)
        if res is None:
            raise ValueError(f"inexact division {cur} / {b} in {question!r}")
        chain.append((cur, sym, b, res))
        cur = res
    return chain


def reference_solution(problem: Problem | str) -> list[str]:
    """Gold steps: one "a op b = c" line per operation, then "The answer is N"."""
    question = problem if isinstance(problem, str) else problem.question
    chain = solve(question)
    return [f"{a} {s} {b} = {c}" for a, s, b, c in chain] + [f"The answer is {chain[-1][3]}"]


def check_steps(question: str, steps: Sequence[str]) -> list[bool]:
    """Math-Shepherd-style labels: step k is good when it applies the k-th operation to the right
    operands in order with the right result (or, after the last operation, states the right
    answer); the first wrong step and every step after it are bad, as are steps past the answer."""
    chain = solve(question)
    labels: list[bool] = []
    ok = True
    for k, step in enumerate(steps):
        if ok:
            if k < len(chain):
                m = _STEP_RE.match(step)
                a, sym, b, c = chain[k]
                ok = bool(m) and (
                    int(m.group(1)),
                    m.group(2).replace("×", "*").replace("x", "*"),
                    int(m.group(3)),
                    int(m.group(4)),
                ) == (a, sym, b, c)
            elif k == len(chain):
                m = _ANSWER_RE.match(step)
                ok = bool(m) and int(m.group(1)) == chain[-1][3]
            else:
                ok = False
        labels.append(ok)
    return labels


def load_arith(cfg) -> list[Problem]:
    """`cfg.size` evaluation problems from `cfg.seed`, levels cycling through `cfg.levels` (1-5)."""
    levels = list(cfg.levels) if cfg.levels else list(LEVELS)
    bad = [lv for lv in levels if lv not in RESULT_CAP]
    if bad:
        from rebase.errors import BadInput

        raise BadInput(f"dataset.levels: arith levels are {list(LEVELS)}, got {bad}")
    return [make_problem(cfg.seed, i, levels[i % len(levels)]) for i in range(cfg.size)]


def eval_questions(eval_seed: int = 0, size: int = 5000) -> set[str]:
    """Every question the first `size` evaluation problems of `eval_seed` can hold, at any level
    (the set training must avoid; any level filter only selects among these)."""
    return {make_problem(eval_seed, i, lv).question for i in range(size) for lv in LEVELS}


def training_problems(
    seed: int, levels: Sequence[int] = LEVELS, eval_seed: int = 0, eval_size: int = 5000
) -> Iterator[Problem]:
    """An endless seeded stream of training problems, disjoint from evaluation: seeds are offset
    into a separate space and any question that equals an evaluation question is dropped."""
    avoid = eval_questions(eval_seed, eval_size)
    rng = random.Random(f"arith-train/{seed}")
    stream = TRAIN_SEED_OFFSET + seed
    i = 0
    while True:
        level = levels[rng.randrange(len(levels))]
        p = make_problem(stream, i, level)
        i += 1
        if p.question not in avoid:
            yield p


class Arith(NumericTask):
    """Generated multi-step arithmetic (levels 1-5), the demo world's dataset."""

    name = "arith"
    # arith's own models were trained on a bare "Question: ...\nAnswer:\n" format
    style = "plain"

    def load(self, cfg) -> list[Problem]:
        return load_arith(cfg)
