"""Tests for how the demo verifier reads and is taught to check a step (scripts/train_demo/step_checks.py,
prm_tokenizer.py, verifier.py, hard_negatives.slipped_steps, train_prm.encode / line_rows / first_error_auc).

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


def test_encode_gives_tag_and_piece_targets_with_either_tokenizer(tok):
    from scripts.train_demo.prm_tokenizer import build_prm_tokenizer
    from scripts.train_demo.train_prm import encode

    p = make_problem(0, 2, 3)
    ref = reference_solution(p)
    a, rest = ref[0].split(" = ")
    slip = [f"{a} = {int(rest) + 1}"] + ref[1:]
    rows = [(p.question, ref, check_steps(p.question, ref)), (p.question, slip, check_steps(p.question, slip))]
    # the policies' character-level tokenizer: one target per step character, just before its tag
    ids, tags, ys, dpos, dys = encode(tok, rows)[1]
    assert ys == [0] * len(slip)
    assert len(dpos) == len(dys) == sum(len(s) for s in slip) and max(dpos) < tags[-1]
    assert tok.decode([ids[i] for i in dpos[: len(slip[0])]]) == slip[0]
    n0, n1 = len(slip[0]), len(slip[1])
    assert dys[:n0] == [1] * (n0 - 1) + [0]
    # the next line starts from the right value, not the written one: a copy error, caught from its first wrong digit
    assert dys[n0 + n1 - 1] == 0 and dys[n0 : n0 + n1].count(0) >= n1 - 2
    # the verifier's tokenizer: a line is five tokens, the slipped result is one wrong token
    vtok = build_prm_tokenizer()
    ids, tags, ys, dpos, dys = encode(vtok, rows)[1]
    assert ys == [0] * len(slip) and len(tags) == len(slip)
    assert vtok.convert_ids_to_tokens([ids[i] for i in dpos[:5]]) == slip[0].split(" ")
    assert dys[:5] == [1, 1, 1, 1, 0] and dys[5:10] == [0] * 5  # the copy error is wrong from its first token
    assert all(encode(vtok, rows)[0][4])  # the reference: every token right


def test_verifier_tokenizer_reads_numbers_as_tokens(tmp_path):
    from transformers import AutoTokenizer

    from scripts.train_demo.prm_tokenizer import NUMBERS, build_prm_tokenizer
    from scripts.train_demo.tokenizer import BAD, GOOD, STEP_TAG

    vtok = build_prm_tokenizer()
    assert vtok.tokenize("17 + 25 = 42" + STEP_TAG + "\nThe answer is 42") == [
        "17",
        "+",
        "25",
        "=",
        "42",
        STEP_TAG,
        "\n",
        "The",
        "answer",
        "is",
        "42",
    ]
    assert all(len(vtok.encode(s, add_special_tokens=False)) == 1 for s in (STEP_TAG, GOOD, BAD, str(NUMBERS - 1)))
    assert vtok.tokenize("1000 zebra") == ["<unk>", "<unk>"]  # outside the vocabulary, never an error
    assert vtok.encode(Q)[0] == vtok.bos_token_id
    vtok.save_pretrained(tmp_path)
    assert AutoTokenizer.from_pretrained(tmp_path).encode(Q + " 17 + 25 = 42" + STEP_TAG) == vtok.encode(
        Q + " 17 + 25 = 42" + STEP_TAG
    )


def test_verifier_numbers_keep_their_value_features_and_line_rows_label_results():
    from scripts.train_demo.prm_tokenizer import build_prm_tokenizer, number_ids, prm_vocab
    from scripts.train_demo.train_prm import encode_lines, first_error_auc, line_rows, pair_logits, step_auc
    from scripts.train_demo.verifier import FEATURES, VerifierShape, build_verifier, number_features, pin_numbers

    vtok = build_prm_tokenizer()
    shape = VerifierShape(hidden=32, layers=1, heads=2, intermediate=64)
    model, feats = build_verifier(len(vtok), number_ids(prm_vocab()), shape, seed=1)
    emb = model.get_input_embeddings().weight
    row = vtok.convert_tokens_to_ids("42")
    assert torch.allclose(emb[row, :FEATURES], torch.tensor(number_features(42)))
    with torch.no_grad():
        emb.add_(1.0)  # an optimiser step moves everything ...
    pin_numbers(model, feats)  # ... and the features are put back
    assert torch.allclose(emb[row, :FEATURES], torch.tensor(number_features(42)))
    assert torch.allclose(
        emb[row, FEATURES:],
        build_verifier(len(vtok), number_ids(prm_vocab()), shape, seed=1)[0]
        .get_input_embeddings()
        .weight[row, FEATURES:]
        + 1.0,
    )

    rows = line_rows(itertools.islice(training_problems(5), 50), random.Random(0))
    assert {r[2][0] for r in rows} == {True, False} and all(r[0] == "" and len(r[1]) == 1 for r in rows)
    data = encode_lines(vtok, rows)
    for (_, (line,), (good,)), (_, _, ys, _, dys) in zip(rows, data):
        assert ys == [int(good)] and dys == [1, 1, 1, 1, int(good)], line  # only the result can be wrong
    tl, ty, dl, dy = pair_logits(model.eval(), vtok, data, dense=True)
    assert tl.shape == (len(rows), 2) and dl.shape == (5 * len(rows), 2)
    assert 0.0 <= step_auc(model, vtok, data) <= 1.0 and 0.0 <= first_error_auc(model, vtok, data) <= 1.0
