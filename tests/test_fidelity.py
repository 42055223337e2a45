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

    OMP_NUM_THREADS=1 .venv/bin/pytest -q tests/test_fidelity.py
"""

from __future__ import annotations

import math
import random

import torch

from strategies.rebase import allocate


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
    # the released code over-spends in a few percent of rounds; elsewhere the two agree exactly
    assert 0.005 * n < overspent < 0.2 * n, overspent
    assert differ == 0, differ


def test_worked_example_of_the_design():
    rewards = [0.9, 0.8, 0.5, 0.2]
    assert allocate(16, rewards, 0.2) == released_allocate(16, rewards, 0.2) == [10, 5, 1, 0]
    assert allocate(16, rewards, 0.1) == released_allocate(16, rewards, 0.1) == [12, 4, 0, 0]
