"""The strategy protocol and the context every strategy searches with.

A strategy receives a *batch* of problems and a budget and returns one SearchResult per problem.
Every round of every problem goes to the backend in ONE `generate` call and every new node of the
round to the PRM in ONE `score` call (the rule that keeps tree search as cheap as sampling). On a
backend with continuous batching (`supports_refill`, the transformers one) REBASE and beam search
can go further (`pipeline: true`): one `generate` call for the whole search, each problem's next
round joining the running decode as soon as its own round is scored (strategies/rebase.py).

    class MyStrategy(Strategy):
        name = "my_search"
        needs_prm = True
        default_aggregator = "weighted_majority"
        class Params(StrategyParams):
            width: int = 4  # documented here, validated by pydantic
        def search(self, problems, budget, ctx): ...

Register it with `@STRATEGIES.register("my_search")` in a module listed in strategies/__init__.py, or
in a third-party module named by a `rebase.plugins` entry point (rebase/plugins.py).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any, ClassVar, Optional

from pydantic import BaseModel, ConfigDict

from rebase.config import SamplingConfig
from rebase.flops import Ledger
from rebase.generator import Generator
from rebase.tasks.prompts import PromptFormat
from rebase.types import Problem, SearchResult
from reward_models.base import PRM


class StrategyParams(BaseModel):
    """Base of every strategy's options; unknown keys are an error naming the key."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)  # every float finite


@dataclass
class SearchContext:
    generator: Generator
    prm: Optional[PRM]
    prompts: PromptFormat
    sampling: SamplingConfig
    seed: int
    dataset: str
    include_truncated: bool = False


class Strategy:
    name: ClassVar[str] = ""
    needs_prm: ClassVar[bool] = False
    default_aggregator: ClassVar[str] = "majority"
    Params: ClassVar[type[StrategyParams]] = StrategyParams
    # declarations the sweep reads instead of special-casing names:
    fixed_budget: ClassVar[Optional[int]] = None  # the only budget it accepts (greedy: 1)
    scores_on_request: ClassVar[bool] = False  # search(..., score=) scores for the aggregators that need it

    def __init__(self, params: Optional[StrategyParams] = None, **options: Any):
        self.params = params if params is not None else self.Params.model_validate(options)

    def search(self, problems: list[Problem], budget: int, ctx: SearchContext) -> list[SearchResult]:
        raise NotImplementedError


def request_seed(seed: int, *parts: Any) -> int:
    """A 63-bit seed from (run seed, problem id, node id, ...): stable whatever the batching."""
    h = hashlib.blake2b(repr((seed,) + parts).encode(), digest_size=8).digest()
    return int.from_bytes(h, "little") >> 1


def new_ledger() -> Ledger:
    return Ledger()
