"""Record store (torn lines, failure superseding) and the sample-reuse subset estimator."""

from __future__ import annotations

import json

import pytest

from eval.pool import derive, subsets
from eval.store import RecordStore
from rebase.flops import FlopSpec, Ledger
from rebase.types import Candidate, SearchResult

KEY = dict(model="m", dataset="d", strategy="s", aggregator="a", budget=1, seed=0)


def test_torn_tail_is_dropped_and_cut(tmp_path):
    path = tmp_path / "results.jsonl"
    good = [dict(KEY, problem_id=str(i), correct=1.0, error=None) for i in range(3)]
    path.write_text("".join(json.dumps(r) + "\n" for r in good) + '{"model": "m", "probl')
    store = RecordStore(path)  # opening for append cuts the torn tail
    assert path.read_text().endswith("\n") and len(store.load()) == 3
    store.append([dict(KEY, problem_id="3", correct=0.0, error=None)])
    assert len(store.load()) == 4
    assert all(json.loads(line) for line in path.read_text().splitlines())


def test_failure_is_superseded_by_success_not_the_reverse(tmp_path):
    store = RecordStore(tmp_path / "r.jsonl")
    store.append([dict(KEY, problem_id="1", correct=0.0, error="boom")])
    assert store.done_keys() == set()
    store.append([dict(KEY, problem_id="1", correct=1.0, error=None)])
    store.append([dict(KEY, problem_id="1", correct=0.0, error="late failure")])
    (rec,) = store.load().values()
    assert rec["error"] is None and len(store.done_keys()) == 1


class Policy:
    name = "p"
    flop_spec = FlopSpec(n_params=1000, n_nonembed=800, n_layer=2, d_attn=16, d_model=16, vocab=50)


def pool(answers, gens, prompt=20):
    cands = [Candidate(steps=["x"], answer=a, step_scores=[0.5]) for a in answers]
    samples = [
        {"prompt_tokens": prompt, "cached_tokens": 0 if i == 0 else prompt, "generated_tokens": g, "prm_tokens": 0}
        for i, g in enumerate(gens)
    ]
    return SearchResult("p0", cands, Ledger(), info={"samples": samples})


def test_subset_estimator_is_exact_when_enumerable():
    res = pool(["1", "2", "1", "3"], [10, 20, 30, 40])
    grade = lambda a: a == "1"  # noqa: E731
    d1 = derive(res, 1, "majority", "last", False, grade, Policy, None, ("s",))
    assert d1["subsets"] == 4 and d1["correct"] == pytest.approx(0.5)
    assert d1["policy_generated_tokens"] == pytest.approx(25.0)
    assert d1["policy_prompt_tokens"] == 20  # one prompt per 1-sample request
    d4 = derive(res, 4, "majority", "last", False, grade, Policy, None, ("s",))
    assert d4["subsets"] == 1 and d4["correct"] == 1.0 and d4["policy_generated_tokens"] == 100
    # the prompt is prefilled once per request, whatever its size: 4 samples cost 1 prefill + 4 decodes
    shared = Ledger()
    for i, g in enumerate([10, 20, 30, 40]):
        shared.add("p", Policy.flop_spec, "policy", 20, 0 if i == 0 else 20, g)
    assert d4["flops_policy"] == pytest.approx(shared.flops("policy"), rel=1e-12)
    alone = []
    for g in [10, 20, 30, 40]:  # each 1-sample request pays its own prefill
        led = Ledger()
        led.add("p", Policy.flop_spec, "policy", 20, 0, g)
        alone.append(led.flops("policy"))
    assert d1["flops_policy"] == pytest.approx(sum(alone) / 4, rel=1e-12)
    assert d4["flops_policy"] < sum(alone)  # sharing the prefill is cheaper than four requests


def test_random_subsets_are_seeded():
    import random

    a = subsets(16, 4, random.Random(1))
    assert a == subsets(16, 4, random.Random(1)) and len(a) == 64 and all(len(s) == 4 for s in a)
