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
        # optional: how a saved tree turns back into candidates (`rebase replay`); default: its terminal leaves
        @classmethod
        def saved_candidates(cls, nodes, ctx): ...

Register it with `@STRATEGIES.register("my_search")` in a module listed in strategies/__init__.py, or
in a third-party module named by a `rebase.plugins` entry point (rebase/plugins.py).
"""

from __future__ import annotations

from typing import Any, ClassVar, Optional

from pydantic import BaseModel, ConfigDict

from rebase.flops import Ledger
from rebase.types import Candidate, Node, Problem, SearchResult
from strategies.context import SearchContext, request_seed
from strategies.tree import Tree

__all__ = ["SearchContext", "Strategy", "StrategyParams", "new_ledger", "request_seed"]


class StrategyParams(BaseModel):
    """Base of every strategy's options; unknown keys are an error naming the key."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)  # every float finite


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

    @classmethod
    def saved_candidates(cls, nodes: list[Node], ctx: SearchContext) -> list[Candidate]:
        """The candidates this strategy formed from a search whose nodes (root first) were saved
        with `save_trees`: what `rebase replay` re-aggregates, so it asks the strategy rather than
        guessing from a name. The default is the tree searches' rule, every terminal leaf in
        creation order (Tree.candidates); a strategy that forms candidates otherwise overrides it."""
        return Tree.from_nodes(nodes).candidates(ctx)


def new_ledger() -> Ledger:
    return Ledger()
