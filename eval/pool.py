"""Sample reuse: derive every smaller budget and every aggregator from one shared pool.

For the N-sample strategies the runner generates one pool of N samples per (model, problem, seed)
at the largest budget. Accuracy at budget k is estimated by averaging the aggregator's correctness
over random k-subsets of the pool (all subsets when there are at most `max_subsets`), which is an
unbiased estimate of the accuracy of an independent k-sample run. Tokens and FLOPs are the means over
the same subsets, priced as a real k-sample request would be: one prompt prefill, k decodes, and the
PRM reading the k candidates (only for aggregators that use the PRM).
"""

from __future__ import annotations

import math
import random
from collections import Counter
from itertools import combinations
from typing import Any, Optional

from rebase.flops import Ledger
from rebase.types import Candidate, SearchResult
from strategies.aggregators import aggregate, vote_key
from strategies.aggregators import needs_prm as aggregator_needs_prm


def subsets(n: int, k: int, rng: random.Random, max_subsets: int = 64) -> list[tuple[int, ...]]:
    if k >= n:
        return [tuple(range(n))]
    if math.comb(n, k) <= max_subsets:
        return list(combinations(range(n), k))
    return [tuple(sorted(rng.sample(range(n), k))) for _ in range(max_subsets)]


def subset_ledger(result: SearchResult, idx: tuple[int, ...], policy: Any, prm: Optional[Any]) -> Ledger:
    """The ledger of a k-sample request made of pool samples `idx`: the first pays the prompt's
    prefill (with whatever prefix cache hit the pool's first sample had), the rest share it. The
    PRM likewise: the first candidate read pays what the pool's first one paid, each other one what
    it paid in the pool (its prefix-cache hit, normally the question, which any k-subset shares too)."""
    samples = result.info["samples"]
    led = Ledger()
    first = samples[0]
    for j, i in enumerate(idx):
        s = samples[i]
        cached = first["cached_tokens"] if j == 0 else s["prompt_tokens"]
        led.add(policy.name, policy.flop_spec, "policy", s["prompt_tokens"], cached, s["generated_tokens"])
        if prm is not None and s["prm_tokens"]:
            prm_cached = (first if j == 0 else s).get("prm_cached_tokens", 0)
            led.add(
                prm.name,
                prm.flop_spec,
                prm.role,
                s["prm_tokens"],
                min(prm_cached, s["prm_tokens"]),
                0,
                logit_rows=s.get("prm_head_rows"),
            )
    return led


def modal_answer(answers: Counter, dataset: Optional[str]) -> Optional[str]:
    """The most frequent answer group over the subsets (first seen on ties; no answer is a group
    of its own), as its most frequent spelling."""
    by_key: dict[Any, Counter] = {}
    for a, n in answers.items():
        by_key.setdefault(None if a is None else ("", vote_key(a, dataset)), Counter())[a] += n
    best = max(by_key.values(), key=lambda c: sum(c.values()))  # max keeps the first of equal groups
    return best.most_common(1)[0][0]


def derive(
    result: SearchResult,
    k: int,
    aggregator: str,
    reduction: str,
    include_truncated: bool,
    grade: Any,
    policy: Any,
    prm: Optional[Any],
    seed_parts: tuple,
    dataset: Optional[str] = None,
    include_invalid: bool = False,
) -> dict[str, Any]:
    """Mean correctness, modal answer and mean costs of `aggregator` over k-subsets of the pool.
    Votes, and the modal answer over subsets, group equivalent answers of `dataset` (vote_key)."""
    rng = random.Random(repr(seed_parts + (k,)))
    subs = subsets(len(result.candidates), k, rng)
    uses_prm = aggregator_needs_prm(aggregator)
    correct, answers, sums = 0.0, Counter(), Counter()
    finished = truncated = 0
    for idx in subs:
        cands: list[Candidate] = [result.candidates[i] for i in idx]
        ans = aggregate(
            aggregator, cands, reduction, include_truncated, dataset=dataset, include_invalid=include_invalid
        )
        answers[ans] += 1
        correct += float(grade(ans))
        finished += sum(c.finished and not c.truncated for c in cands)
        truncated += sum(c.truncated for c in cands)
        sums.update(subset_ledger(result, idx, policy, prm if uses_prm else None).summary())
    m = len(subs)
    out = {key: v / m for key, v in sums.items()}
    out.update(
        answer=modal_answer(answers, dataset),
        correct=correct / m,
        subsets=m,
        n_candidates=k,
        n_finished=finished / m,
        n_truncated=truncated / m,
    )
    return out
