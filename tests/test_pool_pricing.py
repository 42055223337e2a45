"""Sample reuse prices a k-subset as a real k-sample run would be priced, the PRM's prefix cache
included: the whole pool, derived as one subset, costs exactly what the search's ledger says."""

from __future__ import annotations

import random
from dataclasses import replace

import pytest

from eval.pool import subset_ledger
from fakes import FakeGenerator, FakePRM, make_ctx, problems
from rebase.types import Completion
from reward_models.base import ScoreResult
from strategies.sampling import WeightedMajority


class TextGen(FakeGenerator):
    """Sampling sends text prompts: tokenise them, and answer "The answer is N." every time."""

    def __init__(self):
        super().__init__(script=self._script)

    def generate(self, requests):
        return super().generate([replace(r, prompt_token_ids=self.encode(r.prompt)) for r in requests])

    @staticmethod
    def _script(req, i, rng: random.Random):
        n = rng.randint(3, 9)
        return Completion(
            text=f"Step {n}.\nThe answer is {n}.",
            token_ids=[100] * n,
            finish_reason="stop",
            prompt_tokens=len(req.prompt_token_ids),
            cached_tokens=0 if i == 0 else len(req.prompt_token_ids),
            generated_tokens=n,
            stop_reason="\n",
        )


class CachingPRM(FakePRM):
    """Reports the question as served from its prefix cache for every candidate after the first."""

    def score(self, requests):
        out, seen = [], set()
        for r, res in zip(requests, super().score(requests)):
            cached = len(r.question) if r.question in seen else 0
            seen.add(r.question)
            out.append(ScoreResult(scores=res.scores, prompt_tokens=res.prompt_tokens, cached_tokens=cached))
        return out


def test_whole_pool_subset_costs_what_the_search_cost():
    gen, prm = TextGen(), CachingPRM(seed=1)
    ctx = make_ctx(gen, prm)
    for res in WeightedMajority().search(problems(3), 8, ctx):
        assert any(s["prm_cached_tokens"] for s in res.info["samples"])
        derived = subset_ledger(res, tuple(range(8)), gen, prm)
        assert derived.summary() == pytest.approx(res.ledger.summary())
        # a smaller subset still pays the PRM's full question once, like a real run of that size
        small = subset_ledger(res, (3, 5), gen, prm)
        first, other = (e for e in small.entries if e.role == "prm")
        assert first.cached_tokens == 0 and other.cached_tokens > 0
