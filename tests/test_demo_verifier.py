"""Tests for how the demo verifier is taught to check a step (scripts/train_demo/step_checks.py,
hard_negatives.slipped_steps, train_prm.grow / encode / first_error_auc).

    OMP_NUM_THREADS=1 .venv/bin/pytest -x -q tests/test_demo_verifier.py
"""

from __future__ import annotations

import itertools
import random

import pytest
import torch

from rebase.tasks.arith import check_steps, make_problem, reference_solution, solve, training_problems
from scripts.train_demo.step_checks import local_golds, prefix_targets
from scripts.train_demo.tokenizer import build_tokenizer

Q = "Start with 17. Add 25. Multiply by 3. Subtract 8. What is the result?"


@pytest.fixture(scope="module")
def tok():
    return build_tokenizer()


def test_local_golds_check_each_line_against_the_line_before_it_as_written():
    steps = ["17 + 25 = 43", "43 * 3 = 129", "129 - 8 = 121", "The answer is 121"]
    assert local_golds(Q, steps) == ["17 + 25 = 42", "43 * 3 = 129", "129 - 8 = 121", "The answer is 121"]
    # only the slip's own last digit is wrong; the lines after it are right given what was written
    assert prefix_targets(steps, local_golds(Q, steps)) == [[1] * 11 + [0], [1] * 12, [1] * 13, [1] * 17]
    # a wrong operand is wrong from its first wrong character; a line past the answer is all wrong
    steps = ["17 + 25 = 42", "24 * 3 = 72", "72 - 8 = 64", "The answer is 64", "64 + 1 = 65"]
    targets = prefix_targets(steps, local_golds(Q, steps))
    assert targets[1] == [0] * len(steps[1]) and targets[4] == [0] * len(steps[4])
    assert targets[2] == [1] * len(steps[2])
    # an unreadable line leaves the next one nothing to be checked against
    assert local_golds(Q, ["17 + 25 is 42", "42 * 3 = 126"])[1] == ""
    # on a right solution every character is right
    ref = reference_solution(Q)
    assert all(all(t) for t in prefix_targets(ref, local_golds(Q, ref)))


def test_slipped_steps_break_lines_independently_and_carry_on_from_what_is_written():
    from scripts.train_demo.hard_negatives import slipped_steps

    problems = list(itertools.islice(training_problems(3), 300))
    rng = random.Random(0)
    rows = [(p, slipped_steps(p, rng, 0.5)) for p in problems]
    assert rows == [(p, slipped_steps(p, r, 0.5)) for r in [random.Random(0)] for p in problems]  # seeded
    n_multi = 0
    for p, steps in rows:
        golds = local_golds(p.question, steps)
        wrong_lines = sum(not all(t) for t in prefix_targets(steps, golds))
        n_multi += wrong_lines >= 2
        for prev, step in zip(steps, steps[1 : len(solve(p.question))]):
            assert int(step.split(" ")[0]) in (int(prev.split("= ")[1]),) or step != golds[steps.index(step)]
    assert n_multi > 30  # several broken lines in one solution happen
    assert all(all(check_steps(p.question, s)) for p, s in [(p, slipped_steps(p, rng, 0.0)) for p in problems[:20]])


def test_encode_gives_tag_and_character_targets_and_grow_keeps_the_policy(tok):
    from scripts.train_demo.train_policy import PolicySpec, make_model
    from scripts.train_demo.train_prm import encode, first_error_auc, grow, pair_logits, step_auc

    p = make_problem(0, 2, 3)
    ref = reference_solution(p)
    a, rest = ref[0].split(" = ")
    slip = [f"{a} = {int(rest) + 1}"] + ref[1:]
    rows = [(p.question, ref, check_steps(p.question, ref)), (p.question, slip, check_steps(p.question, slip))]
    data = encode(tok, rows)
    ids, tags, ys, dpos, dys = data[1]
    assert ys == [0] * len(slip)
    # one character target per step character, each just before its step's tag
    assert len(dpos) == len(dys) == sum(len(s) for s in slip) and max(dpos) < tags[-1]
    assert tok.decode([ids[i] for i in dpos[: len(slip[0])]]) == slip[0]
    n0, n1 = len(slip[0]), len(slip[1])
    assert dys[:n0] == [1] * (n0 - 1) + [0]
    # the next line starts from the right value, not the written one: a copy error, caught from its first wrong digit
    assert dys[n0 + n1 - 1] == 0 and dys[n0 : n0 + n1].count(0) >= n1 - 2

    policy = make_model(PolicySpec("tiny", hidden=16, layers=1, heads=2), tok).eval()
    verifier = grow(policy, 2).eval()
    assert verifier.config.num_hidden_layers == 3
    for name, w in policy.state_dict().items():
        assert torch.equal(verifier.state_dict()[name], w), name
    tl, ty, dl, dy = pair_logits(verifier, tok, data, dense=True)
    assert tl.shape == (sum(len(r[2]) for r in rows), 2) and dl.shape == (len(dy), 2)
    assert 0.0 <= first_error_auc(verifier, tok, data) <= 1.0 and 0.0 <= step_auc(verifier, tok, data) <= 1.0
