"""Answer rules: the two families a task picks from to pull an answer out of free text, compare it
with the gold answer and group equivalent answers for voting.

Why: "valid", "correct" and "the same answer" must mean one thing for every candidate of every
search and in every grade; tasks (rebase/tasks/base.py) choose a family, they do not re-implement it.

- numeric (GSM8K, arith): `extract_numeric` takes the first number after the LAST "The answer is"
  (case-insensitive); failing that, the last \\boxed{...}; failing that the number after the last
  "####" (the GSM8K reference format). There is deliberately no "last number in the text"
  fallback: it would turn truncated or rambling outputs into votes. `grade_numeric` compares
  numbers exactly (relative tolerance 1e-6); `numeric_key` is the number in lowest terms.
- LaTeX (MATH, MATH-500, AIME, AMC): `extract_boxed` takes the content of the last \\boxed{...} (or
  \\fbox{...}), balanced braces. `grade_latex` tries an exact canonical-string match first, then
  math-verify (`verify(parse(gold), parse(answer))`, both wrapped as "$\\boxed{...}$").
  `latex_answer_key` drops formatting-only differences ("\\dfrac{1}{2}" and "\\frac12" agree).

None from an extractor = nothing extractable: the candidate is invalid and never wins a vote.
Graders never raise.
"""

from __future__ import annotations

import functools
import re
import threading
from fractions import Fraction
from typing import Any, Optional

REL_TOL = 1e-6
VERIFY_TIMEOUT_S = 5  # math-verify's own signal-based limit per parse / comparison
# Longer "answers" are rambling text, not math (MATH's longest gold has 81 characters); sympy can
# spend seconds on them, so they get the exact-string comparison only.
MAX_VERIFY_CHARS = 300

_ANSWER_IS = re.compile(r"the\s+answer\s+is", re.IGNORECASE)
# A number as people write it: optional sign and "$", thousands commas, decimals, an optional
# "/denominator". Thousands groups must be exactly 3 digits so "3,4" stays two numbers.
_NUMBER = re.compile(r"(?<![\w.])[-\u2212]?\s?\$?\s?(?:\d{1,3}(?:,\d{3})+|\d+)?(?:\.\d+)?(?:\s?/\s?\d+)?")
_LATEX_FRAC = re.compile(r"^(-?)\\[dt]?frac\{(-?\d+)\}\{(-?\d+)\}$")


def last_boxed(text: str) -> Optional[str]:
    """Content of the last \\boxed{...} or \\fbox{...} (balanced braces), or of a brace-less
    "\\boxed 5"; None when there is none or its braces never close."""
    if not isinstance(text, str):
        return None
    start = max(text.rfind("\\boxed"), text.rfind("\\fbox"))
    if start < 0:
        return None
    i = start + (len("\\boxed") if text.startswith("\\boxed", start) else len("\\fbox"))
    if i < len(text) and text[i] == " ":  # "\boxed 5": the token up to the next space or "$"
        m = re.match(r" +([^\s$]+)", text[i:])
        return m.group(1) if m else None
    if i >= len(text) or text[i] != "{":
        return None
    depth = 0
    for j in range(i, len(text)):
        if text[j] == "{":
            depth += 1
        elif text[j] == "}":
            depth -= 1
            if depth == 0:
                return text[i + 1 : j].strip()
    return None


def normalize_number(s: str) -> Optional[str]:
    """ "$1,000.00" -> "1000", "18.0" -> "18", "−3" -> "-3", "6/8" -> "3/4", "50%" -> "50";
    None when `s` is not a single number."""
    if not isinstance(s, str):
        return None
    t = s.strip().rstrip(".").replace("\u2212", "-").replace("$", "").replace(",", "")
    t = re.sub(r"\\%|%|\\!|\\,|\\ |\s", "", t)
    t = t.replace("\\text{}", "")
    m = _LATEX_FRAC.match(t)
    if m:
        t = f"{m.group(1)}{m.group(2)}/{m.group(3)}".replace("--", "")
    try:
        if "/" in t:
            num, _, den = t.partition("/")
            if not re.fullmatch(r"-?\d+", num) or not re.fullmatch(r"-?\d+", den) or int(den) == 0:
                return None
            f = Fraction(int(num), int(den))
            return str(f.numerator) if f.denominator == 1 else f"{f.numerator}/{f.denominator}"
        if not re.fullmatch(r"-?(\d+\.?\d*|\.\d+)", t):
            return None
    except ValueError:
        return None
    # trailing zeros off by string surgery: Decimal.normalize would round past 28 digits
    neg, body = t.startswith("-"), t.lstrip("-")
    if "." in body:
        body = body.rstrip("0").rstrip(".")
    body = body.lstrip("0") or "0"
    body = "0" + body if body.startswith(".") else body
    return "-" + body if neg and body != "0" else body


def _to_fraction(s: Optional[str]) -> Optional[Fraction]:
    n = normalize_number(s) if s is not None else None
    try:
        return Fraction(n) if n is not None else None
    except ValueError:  # beyond Python's int-string length limit: not a usable number
        return None


def _number_in(text: str) -> Optional[str]:
    """The number `text` is (a boxed "\\frac{1}{2}", "18 \\text{ dollars}"), else the first one in it."""
    return normalize_number(text) or normalize_number(re.sub(r"\\text\{[^{}]*\}", "", text)) or _first_number(text)


def _first_number(text: str) -> Optional[str]:
    for m in _NUMBER.finditer(text):
        n = normalize_number(m.group(0))
        if n is not None:
            return n
    return None


def _latex_key(s: str) -> str:
    """Whitespace, sizing and display variants removed: the exact-match key of a LaTeX answer."""
    t = s.strip().strip("$").strip()
    t = re.sub(r"\\(?:left|right|big|Big|bigg|Bigg)(?![a-zA-Z])", "", t)
    t = re.sub(r"\\[dt]frac(?![a-zA-Z])", r"\\frac", t)
    t = re.sub(r"\\(?:!|,|;|:| )", "", t)
    t = re.sub(r"\^\{\\circ\}|\^\\circ|\\%|%", "", t)
    t = re.sub(r"\\text\{\s*\}", "", t)
    t = re.sub(r"\s+", "", t)
    t = re.sub(r"\\frac(\d)(\d)", r"\\frac{\1}{\2}", t)  # "\frac12" -> "\frac{1}{2}"
    return t.rstrip(".")


def _fraction_key(f: Fraction) -> str:
    """Lowest terms, and a terminating fraction written exactly as a decimal (1/2 -> "0.5")."""
    twos = fives = 0
    den = f.denominator
    while den % 2 == 0:
        den, twos = den // 2, twos + 1
    while den % 5 == 0:
        den, fives = den // 5, fives + 1
    if den != 1:
        return f"{f.numerator}/{f.denominator}"
    places = max(twos, fives)
    digits = str(abs(f.numerator) * 10**places // f.denominator).rjust(places + 1, "0")
    text = digits if places == 0 else digits[:-places] + "." + digits[-places:]
    return ("-" if f < 0 else "") + text


def _timeout() -> Optional[int]:
    # math-verify's timeout uses signal.alarm, which only works on the main thread; elsewhere
    # (a threaded server) it raises, so there we run without a limit rather than fail.
    return VERIFY_TIMEOUT_S if threading.current_thread() is threading.main_thread() else None


@functools.lru_cache(maxsize=65536)
def _parse_boxed(latex: str) -> tuple[Any, ...]:
    """math-verify parse of one answer; cached because every candidate is graded against the same
    gold and many candidates repeat the same answer."""
    from math_verify import LatexExtractionConfig, parse

    try:
        return tuple(
            parse("$\\boxed{" + latex + "}$", extraction_config=[LatexExtractionConfig()], parsing_timeout=_timeout())
        )
    except BaseException as e:  # math-verify's TimeoutException is a BaseException
        if isinstance(e, (KeyboardInterrupt, SystemExit)):
            raise
        return ()


def verify_latex(answer: str, gold: str) -> bool:
    """math-verify equivalence of two LaTeX answers, with no string shortcut; False on any error."""
    from math_verify import verify

    if len(answer) > MAX_VERIFY_CHARS or len(gold) > MAX_VERIFY_CHARS:
        return False
    g, a = _parse_boxed(gold), _parse_boxed(answer)
    if not g or not a:
        return False
    try:
        return bool(verify(list(g), list(a), timeout_seconds=_timeout()))
    except BaseException as e:
        if isinstance(e, (KeyboardInterrupt, SystemExit)):
            raise
        return False


def extract_numeric(text: str) -> Optional[str]:
    """The final number written in `text` (the numeric family's rule), or None."""
    if not isinstance(text, str) or not text:
        return None
    marks = list(_ANSWER_IS.finditer(text))
    if marks:
        tail = text[marks[-1].end() :]
        boxed = last_boxed(tail)
        n = _number_in(boxed) if boxed is not None else _first_number(tail.split("\n", 1)[0])
        if n is not None:
            return n
    boxed = last_boxed(text)
    if boxed is not None:
        n = _number_in(boxed)
        return n if n is not None else boxed
    if "####" in text:
        return _first_number(text.rsplit("####", 1)[1].split("\n", 1)[0])
    return None


def extract_boxed(text: str) -> Optional[str]:
    """The last \\boxed{...} of `text` (the LaTeX family's rule), or None."""
    if not isinstance(text, str) or not text:
        return None
    return last_boxed(text)


def numeric_key(answer: Optional[str]) -> str:
    """Vote key of a numeric answer: the number in lowest terms (terminating fractions as decimals,
    so "1/2" and "0.5" agree), else the stripped text. None -> ""."""
    if answer is None:
        return ""
    f = _to_fraction(answer)
    return _fraction_key(f) if f is not None else answer.strip()


def latex_answer_key(answer: Optional[str]) -> str:
    """Vote key of a LaTeX answer: a number in lowest terms when it is one, else the LaTeX string
    with formatting-only differences removed. None -> ""."""
    if answer is None:
        return ""
    f = _to_fraction(_latex_key(answer))
    return _fraction_key(f) if f is not None else _latex_key(answer)


def _gradable(answer: Any, gold: Any) -> bool:
    return isinstance(answer, str) and bool(answer.strip()) and isinstance(gold, str)


def grade_numeric(answer: Optional[str], gold: str) -> bool:
    """Whether two numbers agree within REL_TOL (exact rational arithmetic: no float overflow on
    huge numbers, no rounding on long ones); non-numbers compare by vote key."""
    if not _gradable(answer, gold):
        return False
    a, g = _to_fraction(answer), _to_fraction(gold)
    if a is None or g is None:
        return numeric_key(answer) == numeric_key(gold)
    return abs(a - g) <= Fraction(REL_TOL) * max(abs(a), abs(g))


def grade_latex(answer: Optional[str], gold: str) -> bool:
    """Canonical-string match, else math-verify equivalence. Answers over MAX_VERIFY_CHARS skip
    math-verify (exact canonical match only); a parse or comparison past VERIFY_TIMEOUT_S counts as
    a mismatch."""
    if not _gradable(answer, gold):
        return False
    if latex_answer_key(answer) == latex_answer_key(gold):
        return True
    return verify_latex(answer, gold)  # type: ignore[arg-type]
