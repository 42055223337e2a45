"""DVTS, diverse verifier tree search (Beeching, Tunstall, Rush 2024, "Scaling test-time compute with
open models"; search-and-learn), batched across problems.

Budget N = the number of first steps, and the number of steps sampled in every later round while
all subtrees live. N is split into ceil(N / M) independent subtrees (M = `beam_width`, default 4):
M steps each, the last subtree the remainder when M does not divide N. Depth 1 samples N first steps
from the root in one request and deals them out, M to a subtree. Each round, every live subtree
expands its current node into M candidate steps (its width), the PRM scores them, and the subtree
keeps its best one by R(node) (`reward`: last | min | prod | mean of the path scores; ties go to the
earlier child): greedy by the PRM, with no competition between subtrees, which is what keeps them
diverse. A subtree stops when its kept node is terminal: finished (answer given or EOS) or truncated
by the token or depth cap. The search stops when no subtree lives.

Candidates = every terminal leaf of the tree: the ceil(N / M) kept paths plus every sibling that
finished along the way (a whole solution already paid for); unfinished siblings are not solutions.
Default aggregator weighted_majority. `lookahead: L` rolls each open candidate step forward L
greedy steps before the PRM judges it, as in beam search (strategies/beam.py).

All subtrees of all problems go to the backend in ONE generate call per round (plus one per
lookahead step) and to the PRM in ONE score call.

    from strategies.dvts import DVTS
    results = DVTS(beam_width=4).search(problems, 16, ctx)
"""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import Field

from rebase.registry import STRATEGIES
from rebase.types import Node, Problem, Reduction, SearchResult
from strategies.base import SearchContext, Strategy, StrategyParams
from strategies.tree import Tree, grow, new_trees, rollout_score, terminal


def subtree_widths(budget: int, width: int) -> list[int]:
    """Candidate steps per round of each subtree: M each, the last one the remainder."""
    if budget < 1 or width < 1:
        raise ValueError(f"DVTS needs budget >= 1 and beam_width >= 1, got {budget} and {width}")
    return [width] * (budget // width) + ([budget % width] if budget % width else [])


def best_child(kids: list[Node]) -> Node:
    """The child with the highest R(node); the earliest on ties."""
    return max(kids, key=lambda n: (n.reward if n.reward is not None else float("-inf"), -n.id))


@dataclass
class Subtree:
    tree: Tree
    width: int
    current: Node
    live: bool = True


@STRATEGIES.register("dvts")
class DVTS(Strategy):
    """DVTS: N / beam_width independent subtrees, each keeping the PRM's best of beam_width steps per round."""

    name = "dvts"
    needs_prm = True
    default_aggregator = "weighted_majority"

    class Params(StrategyParams):
        beam_width: int = Field(4, ge=1)  # M: candidate steps per subtree per round; N / M subtrees
        reward: Reduction = "last"  # R(node) from its path's step scores
        lookahead: int = Field(0, ge=0)  # greedy rollout steps scored before choosing (0 = off)

    def search(self, problems: list[Problem], budget: int, ctx: SearchContext) -> list[SearchResult]:
        p = self.params
        widths = subtree_widths(budget, p.beam_width)
        trees = new_trees(problems, ctx)
        subtrees = [Subtree(t, w, t.root) for t in trees for w in widths]
        rounds = {id(t): 0 for t in trees}
        rnd = 0

        def judge(nodes: list[tuple[Tree, Node]]) -> None:  # the PRM's view of each new step, lookahead included
            rollout_score(nodes, ctx, p.lookahead, p.reward)

        while True:
            live = [s for s in subtrees if s.live]
            if not live:
                break
            if rnd == 0:  # every subtree starts at the root: one request of N per problem
                groups = grow([(t, t.root, budget) for t in trees], ctx, rnd, judge)
                dealt = {id(t): iter(kids) for t, kids in groups}  # in order: subtree after subtree
                per_subtree = [[next(dealt[id(s.tree)]) for _ in range(s.width)] for s in live]
            else:
                groups = grow([(s.tree, s.current, s.width) for s in live], ctx, rnd, judge)
                per_subtree = [kids for _, kids in groups]
            rnd += 1
            for s, kids in zip(live, per_subtree):
                rounds[id(s.tree)] = rnd
                s.current = best_child(kids)
                s.live = not terminal(s.current)
        return [t.result(t.candidates(ctx), {"rounds": rounds[id(t)], "subtrees": len(widths)}) for t in trees]
