"""Dense check targets: what teaches the demo verifier to recompute a step.

Why: trained on one good/bad bit per step at the tag, a demo PRM never learned to check an addition
or a subtraction (held-out slips in "a + b = c" ranked with an AUC of 0.55), although a policy ranks
the same slips perfectly by its own surprise at the result's digits: one bit per step is too weak a
signal. `prefix_targets` puts a
target on every piece (character or token) of a step: 1 while the text so far begins the step that is
right *given the line before it as written* (`local_golds`), 0 from the first wrong piece on. So every line
is a check, the lines after a slip included (they continue correctly from the wrong value), and the
signal sits on the result itself. The targets are read
through the same (good, bad) logits as the tag; the tag keeps Math-Shepherd's label (good until the
first wrong step), so carrying an earlier error forward is learned there.

    golds = local_golds(question, steps)
    targets = prefix_targets(steps, golds)       # per step, per character (or per token id list)
"""

from __future__ import annotations

import re
from typing import Optional, Sequence

from rebase.tasks.arith import apply_op, parse_question

_LINE = re.compile(r"^-?\d+ [-+*/] -?\d+ = (-?\d+)$")  # a calculation line as the policies write it


def local_golds(question: str, steps: Sequence[str]) -> list[str]:
    """Per step, the step that is right given the step before it as written: the k-th operation
    applied to the previous line's written result (the start value for the first line), then "The
    answer is" that result; "" where there is none (an unreadable previous line, an inexact or
    negative result, a line past the answer)."""
    start, ops = parse_question(question)
    prev: Optional[int] = start
    out = []
    for k, step in enumerate(steps):
        right = ""
        if prev is not None and k < len(ops):
            sym, b = ops[k]
            c = apply_op(prev, sym, b)
            right = f"{prev} {sym} {b} = {c}" if c is not None and c >= 0 else ""
        elif prev is not None and k == len(ops):
            right = f"The answer is {prev}"
        out.append(right)
        m = _LINE.match(step.strip())
        prev = int(m.group(1)) if m else None
    return out


def prefix_targets(steps: Sequence[Sequence], golds: Sequence[Sequence]) -> list[list[int]]:
    """For step k, piece j: 1 while steps[k][: j + 1] begins golds[k], else 0. The pieces are a
    step's characters (strings, stripped as the PRM layout writes them) or its token ids (lists: the
    verifier's tokens, where a number is one piece)."""
    out = []
    for k, step in enumerate(steps):
        text = step.strip() if isinstance(step, str) else list(step)
        gold = golds[k] if k < len(golds) else ""
        gold = gold if isinstance(gold, str) else list(gold)
        out.append([int(bool(gold) and gold[: j + 1] == text[: j + 1]) for j in range(len(text))])
    return out
