"""Answer extraction, grading and vote keys: unit cases, and agreement with the reference solutions
of GSM8K, MATH-500 and full MATH (with negative checks, so a grader that says True to everything
fails). Measured agreement percentages are printed in the assertion messages.

Run: .venv/bin/pytest -q tests/test_grading.py        (add -m "not slow" to skip the 5000-row test)
"""

from __future__ import annotations

import json
import threading

import pytest

from rebase.tasks.grading import answer_key, extract_answer, grade, last_boxed, verify_latex


def _rows(path):
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _shifted(xs):
    """Pair each row with its neighbour's gold: almost always a different answer."""
    return xs[1:] + xs[:1]


@pytest.mark.parametrize(
    "text, expected",
    [
        ("She pays 2 * 500 = $1,000.\nThe answer is $1,000.00.", "1000"),
        ("The answer is 18.0", "18"),
        ("The answer is -3 degrees.", "-3"),
        ("the answer is \u22127", "-7"),
        ("The answer is 3/4 of a cup.", "3/4"),
        ("The answer is 6/8", "3/4"),
        ("The answer is 12. Wait, no. The answer is 13.", "13"),  # the LAST marker wins
        ("The answer is \\boxed{\\frac{1}{2}}", "1/2"),
        ("So we get \\boxed{42}.", "42"),
        ("So we get \\boxed{42 \\text{ apples}}.", "42"),
        ("3 + 4 = 7\n#### 7", "7"),
        ("First 12, then 15 more", None),  # no marker: no last-number guess
        ("The answer is unclear", None),
        ("", None),
    ],
)
def test_extract_numeric(text, expected):
    assert extract_answer(text, "gsm8k") == expected
    assert extract_answer(text, "arith") == expected


@pytest.mark.parametrize(
    "text, expected",
    [
        ("so $x = \\boxed{\\dfrac{9}{7}}$.", "\\dfrac{9}{7}"),
        (
            "first \\boxed{1}, then \\boxed{\\begin{pmatrix} 1 \\\\ 2 \\end{pmatrix}}",
            "\\begin{pmatrix} 1 \\\\ 2 \\end{pmatrix}",
        ),
        ("\\boxed{\\{1,2\\}}", "\\{1,2\\}"),
        ("\\fbox{7}", "7"),
        ("$\\boxed 5$", "5"),
        ("The answer is 5", None),  # MATH answers must be boxed
        ("\\boxed{\\frac{1}{2}", None),  # braces never close
    ],
)
def test_extract_math(text, expected):
    assert extract_answer(text, "math") == expected
    assert extract_answer(text, "math500") == expected


def test_grade_numeric():
    assert grade("1000", "$1,000.00", "gsm8k") and grade(
        extract_answer("The answer is $1,000.00", "gsm8k"), "1000", "gsm8k"
    )
    assert grade("18.0", "18", "gsm8k") and grade("18", "18.0", "arith")
    assert grade("0.5", "1/2", "gsm8k")
    assert grade("1000000.5", "1000000", "gsm8k")  # within 1e-6 relative
    assert not grade("1000002", "1000000", "gsm8k")
    assert grade("1" + "0" * 400, "1" + "0" * 400, "gsm8k")  # beyond float range: exact arithmetic
    assert not grade("1001", "1000", "gsm8k") and not grade("-3", "3", "gsm8k")
    assert not grade(None, "18", "gsm8k") and not grade("", "18", "gsm8k")


def test_grade_math():
    assert grade("\\dfrac{1}{2}", "\\frac{1}{2}", "math")
    assert grade("0.5", "\\frac{1}{2}", "math") and grade("\\frac12", "0.5", "math500")
    assert grade("2\\sqrt{2}", "\\sqrt{8}", "math")  # only math-verify can see this one
    assert grade("\\left( 3, \\frac{\\pi}{2} \\right)", "(3,\\frac{\\pi}{2})", "math500")
    assert not grade("\\frac{1}{3}", "\\frac{1}{2}", "math")
    assert not grade("(1,2)", "(2,1)", "math")
    assert not grade(None, "\\frac{1}{2}", "math") and not grade("  ", "1", "math")


@pytest.mark.parametrize(
    "junk",
    [
        "}{",
        "\\frac{",
        "\\boxed{",
        "$$$",
        "\x00\x01",
        "\\begin{pmatrix}",
        "((((((",
        "x" * 5000,
        "x" * 40,
        "1" * 5000,
        "1/0",
    ],
)
def test_grade_never_raises(junk):
    for ds in ("gsm8k", "math"):
        assert grade(junk, "1", ds) is False
        assert isinstance(grade("1", junk, ds), bool)
        answer_key(junk, ds)
    assert grade(5, "5", "math") is False  # not a string: invalid, not an exception


def test_grade_off_the_main_thread():
    # math-verify's timeouts use signals, which only work on the main thread
    out = []
    t = threading.Thread(target=lambda: out.append(grade("3\\sqrt{3}", "\\sqrt{27}", "math")))
    t.start()
    t.join()
    assert out == [True]


def test_answer_key_groups_equivalent_answers():
    assert answer_key("$1,000.00", "gsm8k") == answer_key("1000", "gsm8k") == "1000"
    assert answer_key("1/2", "gsm8k") == answer_key("0.50", "gsm8k")
    assert answer_key("2/3", "gsm8k") == answer_key("4/6", "gsm8k") != answer_key("0.67", "gsm8k")
    assert answer_key("\\dfrac{1}{2}", "math") == answer_key("\\frac{1}{2}", "math") == answer_key("\\frac12", "math")
    assert answer_key("\\left( 3, \\frac{\\pi}{2} \\right)", "math") == answer_key("(3,\\frac{\\pi}{2})", "math")
    assert answer_key("90^\\circ", "math") == answer_key("90", "math")
    assert answer_key("(1,2)", "math") != answer_key("(2,1)", "math")
    assert answer_key("-\\frac{1}{2}", "math") == answer_key("-0.5", "math") != answer_key("0.5", "math")
    assert answer_key("1/8", "gsm8k") == "0.125" and answer_key("-3/20", "gsm8k") == "-0.15"
    # long numbers keep every digit (no 28-digit Decimal rounding), so they do not collide
    assert answer_key("12345678901234567890123456789012.50", "gsm8k") == "12345678901234567890123456789012.5"
    assert answer_key(None, "math") == ""


def test_gsm8k_reference_answers(bench_data):
    rows = _rows(bench_data / "gsm8k/test.jsonl")
    golds = [r["answer"].rsplit("####", 1)[1].strip() for r in rows]
    # the reference format ("#### N") and the prompt format ("The answer is N.") both extract and grade
    ref = sum(grade(extract_answer(r["answer"], "gsm8k"), g, "gsm8k") for r, g in zip(rows, golds))
    styled = [r["answer"].rsplit("####", 1)[0] + f"The answer is {g}." for r, g in zip(rows, golds)]
    pro = sum(grade(extract_answer(t, "gsm8k"), g, "gsm8k") for t, g in zip(styled, golds))
    neg = sum(grade(extract_answer(r["answer"], "gsm8k"), g, "gsm8k") for r, g in zip(rows, _shifted(golds)))
    n = len(rows)
    assert ref == n and pro == n, f"GSM8K agreement: reference {ref / n:.2%}, 'The answer is' {pro / n:.2%}"
    assert neg / n < 0.05, f"GSM8K shifted-gold false matches {neg / n:.2%}"


def test_math500_boxed_solution_vs_answer_field(bench_data):
    rows = _rows(bench_data / "math500/test.jsonl")
    n = len(rows)
    answers = [extract_answer(r["solution"], "math500") for r in rows]
    golds = [r["answer"] for r in rows]
    agree = sum(grade(a, g, "math500") for a, g in zip(answers, golds))
    mv = sum(verify_latex(a, g) for a, g in zip(answers, golds))  # math-verify alone, no string path
    neg = sum(grade(a, g, "math500") for a, g in zip(answers, _shifted(golds)))
    msg = f"MATH-500: grade {agree / n:.2%}, math-verify only {mv / n:.2%}, shifted-gold {neg / n:.2%}"
    assert agree / n >= 0.99 and mv / n >= 0.99, msg
    assert neg / n <= 0.05, msg


@pytest.mark.slow
def test_math_boxed_solution_vs_gold(bench_data):
    """All 5000 MATH rows. The gold comes by a route independent of our \\boxed{} extraction: the
    MATH-500 `answer` field where the problem is in MATH-500, else math-verify's own extraction
    from the whole solution text. Both the full grade() and math-verify alone must agree."""
    from math_verify import parse

    rows = _rows(bench_data / "math/test.jsonl")
    m500 = {r["problem"]: r["answer"] for r in _rows(bench_data / "math500/test.jsonl")}
    answers = [extract_answer(r["solution"], "math") for r in rows]
    golds = []
    for r in rows:
        if r["problem"] in m500:
            golds.append(m500[r["problem"]])
        else:
            found = parse(r["solution"])
            golds.append(found[-1] if found and isinstance(found[-1], str) else None)
    n = len(rows)
    if len(rows) == 5000:  # the whole set holds all of MATH-500
        assert sum(r["problem"] in m500 for r in rows) == 500
    agree = sum(g is not None and grade(a, g, "math") for a, g in zip(answers, golds))
    mv = sum(verify_latex(a, last_boxed(r["solution"])) for a, r in zip(answers, rows))
    neg = sum(grade(a, g, "math") for a, g in zip(answers, _shifted(golds)) if g is not None)
    msg = f"MATH ({n}): grade vs independent gold {agree / n:.2%}, math-verify self-check {mv / n:.2%}, shifted-gold {neg / n:.2%}"
    assert agree / n >= 0.98 and mv / n >= 0.98, msg
    assert neg / n <= 0.05, msg
