"""The documented script API `eval.grading` answers like the task rules it re-exports."""

from eval.grading import answer_key, extract_answer, grade


def test_public_grading_api():
    assert extract_answer("So 999 + 1 = 1000. The answer is 1,000.", "gsm8k") is not None
    assert grade(extract_answer("The answer is 1,000.", "gsm8k"), "1000", "gsm8k")
    assert not grade(extract_answer("The answer is 1,001.", "gsm8k"), "1000", "gsm8k")
    assert answer_key("1,000", "gsm8k") == answer_key("1000.00", "gsm8k")
    assert answer_key("\\dfrac{1}{2}", "math500") == answer_key("\\frac12", "math500")
