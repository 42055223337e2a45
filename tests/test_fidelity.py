"""Parity of REBASE's allocation with the released code's (docs/FIDELITY.md, "exact allocator").

The released implementation (thu-wyz/inference_scaling, rebase.py, `select_softmax`) is
re-implemented here from its description: sort the frontier by reward, highest first (a stable
ascending sort reversed, so equal rewards come latest-first); weights exp(R / T_b) as a float32
tensor; for each node in turn, num = ceil(width * w / sum_w), then width -= num and sum_w -= w.
Its float32 sums drift, so `w / sum_w` can exceed 1 at the last node and ceil() hands out one
child more than the budget. `strategies.rebase.allocate` computes the same shares in float64 from
max-shifted exponentials and caps each at what is left. On thousands of random frontiers the two
must give identical children per node except where the released one over-spends, and there
rebase spends exactly the budget.

It also holds the page to its word: every setting the tables name as the one that reproduces a
reference must be a real config key (the config loads with it and keeps its value), and each key
must have the test that shows its effect (SHOWN_BY).

    OMP_NUM_THREADS=1 .venv/bin/pytest -q tests/test_fidelity.py
"""

from __future__ import annotations

import copy
import math
import random
import re
from pathlib import Path

import pytest
import torch

from rebase.config import RunConfig, apply_overrides, load_config
from strategies.rebase import Rebase, allocate

ROOT = Path(__file__).resolve().parents[1]

# each setting docs/FIDELITY.md names -> the test (file, function) that shows what it does
SHOWN_BY = {
    "balance_temperature": ("test_rebase.py", "test_search_saves_allocations_and_rounding_outcome"),
    "rounding": ("test_rebase.py", "test_search_saves_allocations_and_rounding_outcome"),
    "flops_view": ("test_report.py", "test_summary_and_files"),
    "token_cap": ("test_token_cap.py", "test_the_released_cap_never_fires_below_max_step_tokens"),
    "sampling.max_depth": ("test_tree.py", "test_node_states_under_caps"),
    "invalid_votes": ("test_replay.py", "test_invalid_votes_setting_lets_the_no_answer_group_win"),
    "prm.on_error": ("test_prm.py", "test_nan_logits_raise_or_default"),
    "prm.kv_reuse": ("test_prm_kv_reuse.py", "test_incremental_scores_equal_full_rereading"),
}
BASE = {
    "models": [{"name": "m", "path": "some/model"}],
    "prm": {"family": "step_tag", "path": "some/prm", "tag": " ки", "good": "+", "bad": "-"},
    "dataset": {"name": "gsm8k"},
    "strategies": [{"name": "rebase", "budgets": [4]}],
}


def documented_settings() -> list[tuple[str, str]]:
    """(key, value) of every `key: value` in the last column of the FIDELITY.md tables."""
    out = []
    for line in (ROOT / "docs" / "FIDELITY.md").read_text(encoding="utf-8").splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if not line.startswith("|") or len(cells) < 5 or set(cells[-1]) <= {"-"} or cells[-1].startswith("setting"):
            continue
        out += re.findall(r"`([a-z_.]+): ([^`]+)`", cells[-1])
    return out


def test_the_page_names_its_settings():
    keys = {k for k, _ in documented_settings()}
    assert keys == set(SHOWN_BY), keys ^ set(SHOWN_BY)  # a new setting on the page needs its test here


@pytest.mark.parametrize("key,value", documented_settings())
def test_each_documented_setting_is_a_config_key_with_its_test(key, value):
    top = key.split(".")[0]
    path = key if top in RunConfig.model_fields else f"strategies.0.{key}"
    assert top in RunConfig.model_fields or key in Rebase.Params.model_fields, key
    cfg = load_config(None, raw=apply_overrides(copy.deepcopy(BASE), [f"{path}={value}"]))
    if path.startswith("strategies."):
        got = getattr(Rebase.Params.model_validate(cfg.strategies[0].options()), key)
    else:
        got = cfg
        for part in key.split("."):
            got = getattr(got, part)
    assert str(got).lower() == value.lower()  # the value is kept, not dropped or coerced elsewhere
    file, test = SHOWN_BY[key]
    assert f"def {test}(" in (ROOT / "tests" / file).read_text(encoding="utf-8"), (key, file, test)


def released_allocate(width: int, rewards: list[float], temperature: float) -> list[int]:
    """Children per node, in input order, as the released select_softmax computes them."""
    order = sorted(range(len(rewards)), key=lambda j: rewards[j])
    order.reverse()
    exp_weights = torch.exp(torch.tensor([rewards[j] for j in order]) / temperature)
    total = exp_weights.sum()
    out = [0] * len(rewards)
    for j, w in zip(order, exp_weights):
        num = int(math.ceil(width * w / total))
        out[j] = max(num, 0)  # the released loop expands only nodes with num >= 1
        width -= num
        total -= w
    return out


def cases(n: int, seed: int = 0):
    rng = random.Random(seed)
    for _ in range(n):
        k = rng.randint(1, 24)
        yield rng.randint(1, 128), [rng.random() for _ in range(k)], rng.choice([0.1, 0.2])


def test_rebase_allocation_matches_released_except_where_it_overspends():
    n, overspent, differ = 3000, 0, 0
    for budget, rewards, t_b in cases(n):
        ours, theirs = allocate(budget, rewards, t_b), released_allocate(budget, rewards, t_b)
        assert sum(ours) == budget, (budget, rewards, t_b)
        if sum(theirs) > budget:
            overspent += 1
            assert sum(theirs) == budget + 1  # by one child, never more
            continue
        if ours != theirs:
            differ += 1
    # the released code over-spends in 133 of these 3000 rounds (4.4%, docs/FIDELITY.md); elsewhere the two agree
    assert 0.03 * n < overspent < 0.06 * n, overspent
    assert differ == 0, differ


def test_worked_example_of_the_design():
    rewards = [0.9, 0.8, 0.5, 0.2]
    assert allocate(16, rewards, 0.2) == released_allocate(16, rewards, 0.2) == [10, 5, 1, 0]
    assert allocate(16, rewards, 0.1) == released_allocate(16, rewards, 0.1) == [12, 4, 0, 0]
