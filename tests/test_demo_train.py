"""Tests for the demo world's training code (rebase/demo/) and its committed models.

Tiny runs only (a few steps of a tiny model): the tokenizer's PRM tokens, the loss mask, training
determinism, the PRM data layout and AUC, and that the committed models load and are ordered by
size on held-out problems.

    OMP_NUM_THREADS=1 .venv/bin/pytest -x -q tests/test_demo_train.py
"""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
import torch

from rebase.tasks.arith import make_problem, reference_solution, training_problems
from rebase.demo import MODELS_DIR
from scripts.train_demo.tokenizer import BAD, GOOD, STEP_TAG, build_tokenizer
from scripts.train_demo.train_policy import PolicySpec, policy_batch, prompt_text, train_policy
from reward_models.base import step_tag_text


@pytest.fixture(scope="module")
def tok():
    return build_tokenizer()


def test_tokenizer_roundtrip_and_prm_tokens(tok, tmp_path):
    from transformers import AutoTokenizer

    for s in (STEP_TAG, GOOD, BAD):
        assert len(tok.encode(s, add_special_tokens=False)) == 1
    p = make_problem(0, 3, 4)
    text = prompt_text(p.question) + "\n".join(reference_solution(p))
    ids = tok.encode(text)
    assert ids[0] == tok.bos_token_id and tok.decode(ids, skip_special_tokens=True) == text
    tok.save_pretrained(tmp_path)
    again = AutoTokenizer.from_pretrained(tmp_path)
    assert again.encode(text) == ids and again.chat_template is None
    tagged = step_tag_text(p.question, reference_solution(p), STEP_TAG)
    assert tok.encode(tagged).count(tok.convert_tokens_to_ids(STEP_TAG)) == len(reference_solution(p))


def test_loss_only_on_solution_and_eos(tok):
    probs = list(itertools.islice(training_problems(0), 3))
    ids, mask, lab = policy_batch(tok, probs)
    for i, p in enumerate(probs):
        n_prompt = len(tok.encode(prompt_text(p.question)))
        sol = "\n".join(reference_solution(p))
        assert (lab[i, :n_prompt] == -100).all()
        kept = lab[i][lab[i] != -100].tolist()
        assert kept[-1] == tok.eos_token_id
        assert tok.decode(kept[:-1]) == sol


def test_tiny_training_is_deterministic(tok):
    spec = PolicySpec("tiny", hidden=16, layers=1, heads=2, steps=3, batch=4, warmup=1, seed=5)
    _, a = train_policy(spec, tok)
    m, b = train_policy(spec, tok)
    assert a["final_loss"] == b["final_loss"] and np.isfinite(a["final_loss"])
    assert a["params"] == b["params"] > 0


def test_prm_data_and_auc(tok):
    from scripts.train_demo.train_prm import auc, encode, label_samples, pair_logits, step_auc
    from scripts.train_demo.train_policy import make_model

    p = make_problem(0, 2, 3)
    ref = "\n".join(reference_solution(p))
    a, rest = reference_solution(p)[1].split(" = ")
    slip = "\n".join(reference_solution(p)[:1] + [f"{a} = {int(rest) + 1}"] + reference_solution(p)[2:])
    rows = label_samples([p.question, p.question, p.question], [ref, slip, ""])
    assert len(rows) == 2 and all(rows[0][2]) and rows[1][2] == [True] + [False] * (len(rows[1][2]) - 1)
    data = encode(tok, rows)
    model = make_model(PolicySpec("tiny", hidden=16, layers=1, heads=2), tok)
    logits, y = pair_logits(model, tok, data)
    assert logits.shape == (sum(len(r[2]) for r in rows), 2) and y.tolist() == [int(x) for r in rows for x in r[2]]
    # step_auc is the AUC of P(good) = softmax([l+, l-])[0] against the labels, nothing looser
    p_good = torch.softmax(logits.detach().float(), -1)[:, 0].numpy()
    assert step_auc(model, tok, data) == pytest.approx(auc(p_good, y.numpy()), abs=1e-12)
    assert auc(np.array([0.9, 0.8, 0.1, 0.2]), np.array([1, 1, 0, 0])) == 1.0
    assert auc(np.array([0.1, 0.2, 0.8, 0.9]), np.array([1, 1, 0, 0])) == 0.0
    assert auc(np.array([0.1, 0.4, 0.35, 0.8]), np.array([0, 0, 1, 1])) == 0.75  # 3 of 4 pairs ordered
    assert auc(np.array([0.5, 0.5, 0.2]), np.array([1, 0, 0])) == 0.75  # a tie counts one half
    assert auc(np.array([0.5, 0.5]), np.array([1, 0])) == 0.5


def _committed(name):
    d = MODELS_DIR / name
    if not (d / "model.safetensors").exists():
        pytest.skip(f"{d} not trained yet (python -m scripts.train_demo)")
    return d


def test_committed_models_load_and_larger_is_better(tok):
    import torch
    from transformers import AutoTokenizer

    from scripts.train_demo.artifacts import heldout_problems
    from scripts.train_demo.train_policy import greedy_accuracy

    torch.set_num_threads(1)
    probs = heldout_problems(50)
    acc = {}
    for name in ("arith-s", "arith-l"):
        d = _committed(name)
        t = AutoTokenizer.from_pretrained(d)
        assert t.encode("Question: 1") == tok.encode("Question: 1")
        acc[name] = greedy_accuracy(d, probs)["overall"]
    assert acc["arith-l"] > acc["arith-s"]


def test_committed_prm_has_single_token_labels():
    from transformers import AutoModelForCausalLM, AutoTokenizer

    d = _committed("arith-prm")
    t = AutoTokenizer.from_pretrained(d)
    for s in (STEP_TAG, GOOD, BAD):
        assert len(t.encode(s, add_special_tokens=False)) == 1
    assert AutoModelForCausalLM.from_pretrained(d).config.vocab_size == len(t)


def test_committed_prm_tells_slips_from_right_steps():
    # the shipped verifier checks arithmetic: slips made on purpose in problems no training stage saw
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from scripts.train_demo.hard_negatives import corrupted_rows
    from scripts.train_demo.train_prm import encode, first_error_auc

    torch.set_num_threads(1)
    d = _committed("arith-prm")
    t = AutoTokenizer.from_pretrained(d)
    model = AutoModelForCausalLM.from_pretrained(d).eval()
    rows = corrupted_rows(itertools.islice(training_problems(4242), 200), 7)
    assert first_error_auc(model, t, encode(t, rows)) >= 0.87  # 0.886 for the shipped weights


def _train_demo(args, tmp_path, via_cli=False):
    import os
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[1]
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(root))
    # `rebase train-demo` runs the same main from the checkout the package is installed from
    cmd = (
        [sys.executable, "-m", "rebase.cli", "train-demo"] if via_cli else [sys.executable, "-m", "scripts.train_demo"]
    )
    return subprocess.run(
        [*cmd, *args],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


@pytest.mark.parametrize(
    "args,fragment",
    [
        (["--only", "arith-x"], "--only: unknown model 'arith-x'"),
        (["--steps-scale", "0"], "--steps-scale must be > 0"),
        (["--steps-scale", "abc"], "--steps-scale: invalid float value"),
        (["--eval-size", "0"], "--eval-size must be >= 1"),
        (["--no-such-flag"], "unrecognized arguments"),
    ],
)
@pytest.mark.parametrize("via_cli", [False, True])
def test_train_demo_bad_arguments_exit_2_with_one_line(args, fragment, via_cli, tmp_path):
    out = tmp_path / "models"
    proc = _train_demo([*args, "--out", str(out)], tmp_path, via_cli)
    assert proc.returncode == 2, proc.stderr
    assert fragment in proc.stderr.strip().splitlines()[-1]
    assert "Traceback" not in proc.stderr and not proc.stdout.strip() and not out.exists()


@pytest.mark.slow
def test_train_demo_success_exit_0_and_one_json_summary_last(tmp_path):
    import json

    proc = _train_demo(
        ["--steps-scale", "0.002", "--only", "arith-s", "--eval-size", "5", "--out", str(tmp_path / "m")],
        tmp_path,
        via_cli=True,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = proc.stdout.strip().splitlines()
    summary = json.loads(lines[-1])
    assert summary["out"] == str(tmp_path / "m") and set(summary["models"]) == {"arith-s"}
    assert sum(line.lstrip().startswith("{") for line in lines) == 1  # exactly one JSON summary
    assert (tmp_path / "m" / "arith-s" / "model.safetensors").is_file()


def test_hard_negatives_break_one_step_and_carry_on_from_it():
    from rebase.tasks.arith import solve
    from scripts.train_demo.hard_negatives import corrupted_rows, slip

    rng_problems = list(itertools.islice(training_problems(3), 400))
    rows = corrupted_rows(rng_problems, seed=1)
    assert rows == corrupted_rows(rng_problems, seed=1)  # seeded
    n_bad = 0
    for q, steps, labels in rows:
        chain = solve(q)
        if all(labels):  # cut short before the break (a negative or inexact result): a right prefix
            assert len(steps) <= len(chain)
            continue
        n_bad += 1
        k = labels.index(False)
        assert labels == [True] * k + [False] * (len(labels) - k)  # Math-Shepherd labels
        # every step after the broken one is computed right from the value before it
        for prev, step in zip(steps[k:], steps[k + 1 : len(chain)]):
            a = int(step.split(" ")[0])
            assert a == int(prev.split("= ")[1])
    assert n_bad > 0.9 * len(rows)
    import random

    r = random.Random(0)
    assert all(slip(x, r) not in (x,) and slip(x, r) >= 0 for x in (0, 1, 9, 10, 99, 148, 199) for _ in range(50))


def test_rebase_train_demo_outside_a_clone_exits_2_with_one_line(tmp_path):
    # an installed package without the repository beside it: say so, do not fail on an import
    import os
    import shutil
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[1]
    shutil.copytree(root / "rebase", tmp_path / "rebase", ignore=shutil.ignore_patterns("models", "__pycache__"))
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(tmp_path))
    proc = subprocess.run(
        [sys.executable, "-m", "rebase.cli", "train-demo", "--only", "arith-s"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert "no scripts/train_demo beside the installed package" in proc.stderr.strip().splitlines()[-1]
    assert "Traceback" not in proc.stderr and not proc.stdout.strip()


def test_shipped_demo_models_stay_under_30_mb():
    # the demo world ships inside the package: weights, tokenizers and cards together stay small
    from rebase.demo import MODELS_DIR

    total = sum(p.stat().st_size for p in Path(MODELS_DIR).rglob("*") if p.is_file())
    assert 0 < total < 30 * 2**20, total
