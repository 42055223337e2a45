"""Step-level beam search with a PRM, batched across problems (registered as "beam_search").

Beyond the paper: the usual PRM-guided beam search (as in search-and-learn), written with REBASE's
budget bookkeeping so the two differ only in how a round's children are shared out.
Budget N = the number of solutions wanted. Depth 1 samples N first steps. Each round the PRM scores
the new nodes; terminal ones (finished or truncated) use one unit each, B_i = B_{i-1} - finished_i;
stop at B_i = 0. Otherwise keep the K = ceil(B_i / M) unfinished nodes with the highest R(node)
(M = `beam_width`) and give each M children, the last kept one only what remains, so exactly B_i
children are sampled; the other nodes are pruned. Like REBASE with sequential_ceil, every problem
ends with exactly N terminal leaves. All problems move in lock-step rounds: one generate call and
one score call per round for the whole batch.

Where REBASE spreads children by softmax(R / T_b), beam search gives all of them to the top K
nodes: REBASE at T_b -> 0 with a cap of M children per node.

`lookahead: L` (search-and-learn's option): before the round's nodes are ranked, each open one is
rolled forward L steps greedily (temperature 0) and R(node) is the reduction over its path and the
rollout, scored at the rollout's end; the rollout is not kept. A round then makes 1 + L generate
calls (one per rollout step, all problems together) and still one PRM call; the rollout tokens are
charged to the ledger (info["rollout_tokens"] counts them). The budget is unchanged: N terminal
leaves, rollouts are extra compute, visible on the FLOP axis.

    from strategies.beam import BeamSearch
    results = BeamSearch(beam_width=4).search(problems, 16, ctx)
"""

from __future__ import annotations

import math
from typing import Sequence

from pydantic import Field

from rebase.registry import STRATEGIES
from rebase.types import Node, Reduction
from strategies.base import SearchContext, StrategyParams
from strategies.rebase import Rebase
from strategies.tree import Tree, rollout_score


def beam_allocate(budget: int, rewards: Sequence[float], width: int) -> list[int]:
    """Children per frontier node (input order): the top ceil(budget / width) nodes by reward get
    `width` each, the last of them the remainder; ties keep input order. Sums to `budget` whenever
    there are at least ceil(budget / width) nodes."""
    if width < 1:
        raise ValueError(f"beam width must be >= 1, got {width}")
    out = [0] * len(rewards)
    b_rem = max(budget, 0)
    for j in sorted(range(len(rewards)), key=lambda j: -rewards[j])[: math.ceil(b_rem / width)]:
        out[j] = min(width, b_rem)
        b_rem -= out[j]
    return out


@STRATEGIES.register("beam_search")
class BeamSearch(Rebase):
    """Beam search: keep the top-scored nodes of each depth, an equal share of children each."""

    name = "beam_search"
    needs_prm = True
    default_aggregator = "weighted_majority"

    class Params(StrategyParams):
        beam_width: int = Field(4, ge=1)  # M: children per kept node; N / M nodes survive a round
        reward: Reduction = "last"  # R(node) from its path's step scores
        lookahead: int = Field(0, ge=0)  # greedy rollout steps scored before ranking (0 = off)
        pipeline: bool = False  # as REBASE's: next rounds join the running decode (transformers; off with lookahead)

    def allocate(self, budget: int, rewards: list[float]) -> list[int]:
        return beam_allocate(budget, rewards, self.params.beam_width)

    def score_round(self, nodes: list[tuple[Tree, Node]], ctx: SearchContext) -> None:
        rollout_score(nodes, ctx, self.params.lookahead, self.params.reward)
