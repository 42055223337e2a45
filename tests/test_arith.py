"""Tests for the `arith` dataset (rebase/tasks/arith.py): seeded generation, levels, gold answers, the
step checker's Math-Shepherd-style labels, and evaluation/training disjointness.

    OMP_NUM_THREADS=1 .venv/bin/pytest -x -q tests/test_arith.py
"""

from __future__ import annotations

import itertools
from types import SimpleNamespace

import pytest

from rebase.tasks.arith import (
    LEVELS,
    RESULT_CAP,
    check_steps,
    load_arith,
    make_problem,
    parse_question,
    reference_solution,
    solve,
    training_problems,
)
from rebase.tasks.grading import extract_answer, grade


def cfg(size=50, seed=0, levels=None):
    return SimpleNamespace(size=size, seed=seed, levels=levels)


def test_seeded_and_deterministic():
    a, b = load_arith(cfg(40, seed=3)), load_arith(cfg(40, seed=3))
    assert [p.question for p in a] == [p.question for p in b]
    assert [p.question for p in a] != [p.question for p in load_arith(cfg(40, seed=4))]
    assert a[7].id == "arith-3-7" and a[7].dataset == "arith"
    # problem i does not depend on how many are generated
    assert load_arith(cfg(10, seed=3))[7].question == a[7].question


def test_levels_set_operation_count_and_number_range():
    for lv in LEVELS:
        probs = load_arith(cfg(60, levels=[lv]))
        assert {p.level for p in probs} == {lv}
        for p in probs:
            chain = solve(p.question)
            assert len(chain) == lv + 1
            assert all(0 <= c <= RESULT_CAP[lv] for _, _, _, c in chain)
    mix = load_arith(cfg(50))
    assert sorted({p.level for p in mix}) == list(LEVELS)


def test_gold_equals_reference_final_answer():
    for p in load_arith(cfg(500, seed=1)):
        steps = reference_solution(p)
        assert steps[-1] == f"The answer is {p.gold}"
        assert grade(extract_answer("\n".join(steps), "arith"), p.gold, "arith")
        assert all(check_steps(p.question, steps))


def test_reference_format():
    p = make_problem(0, 0, 3)
    steps = reference_solution(p)
    start, ops = parse_question(p.question)
    assert steps[0].startswith(f"{start} {ops[0][0]} {ops[0][1]} = ")
    assert len(steps) == len(ops) + 1 and all("\n" not in s for s in steps)


def test_check_steps_marks_first_slip_and_all_after():
    p = make_problem(0, 4, 5)
    steps = reference_solution(p)
    for k in range(len(steps) - 1):
        a, rest = steps[k].split(" = ")
        slipped = steps[:k] + [f"{a} = {int(rest) + 1}"] + steps[k + 1 :]
        assert check_steps(p.question, slipped) == [True] * k + [False] * (len(steps) - k)


def test_check_steps_wrong_operand_order_and_answer():
    q = "Start with 17. Add 25. Multiply by 3. Subtract 8. What is the result?"
    assert reference_solution(q) == ["17 + 25 = 42", "42 * 3 = 126", "126 - 8 = 118", "The answer is 118"]
    assert check_steps(q, ["17 + 25 = 42", "42 * 3 = 126", "126 - 8 = 118", "The answer is 118."]) == [True] * 4
    # right arithmetic, wrong operand (skipped an operation)
    assert check_steps(q, ["17 + 25 = 42", "42 - 8 = 34", "34 * 3 = 102"]) == [True, False, False]
    # operands swapped
    assert check_steps(q, ["25 + 17 = 42"]) == [False]
    # wrong final answer, early answer, extra step after the answer
    assert check_steps(q, ["17 + 25 = 42", "42 * 3 = 126", "126 - 8 = 118", "The answer is 119"])[-1] is False
    assert check_steps(q, ["17 + 25 = 42", "The answer is 42"]) == [True, False]
    assert check_steps(q, reference_solution(q) + ["118 + 0 = 118"])[-1] is False
    assert check_steps(q, ["garbage"]) == [False]


def test_training_stream_disjoint_from_evaluation():
    eval_qs = {p.question for p in load_arith(cfg(2000, seed=0))}
    train = list(itertools.islice(training_problems(0), 3000))
    assert not eval_qs & {p.question for p in train}
    assert all(not p.id.startswith("arith-0-") for p in train)
    # deterministic stream
    again = list(itertools.islice(training_problems(0), 50))
    assert [p.question for p in again] == [p.question for p in train[:50]]


def test_bad_level_rejected():
    with pytest.raises(Exception, match="levels"):
        load_arith(cfg(5, levels=[9]))
