"""MCTS with UCT (Wu et al. 2025, appendix B/C), batched across problems.

Each round, every problem with budget left selects a leaf by UCT from the root,
    UCT(child) = Q(child) + c * sqrt(ln N(parent) / N(child)),   c = `exploration` (paper: 1),
expands it with `root_width` children at the root (paper: 4, 8 or 16) or `inner_width` (2)
elsewhere, scores the children with the PRM (a new node's value = R(node), the `reward` reduction
of its path scores, counted as one visit) and backs each child's value up to the root as a running
mean Q. Budget = total node expansions (one selected leaf expanded = one unit; paper: 32, 64, 128).
All problems' expansions of a round go in ONE generate call and ONE score call.

`parallel` > 1 selects several leaves per problem per round with virtual loss: each pending
selection counts as an extra visit of value 0 on its path, steering the next selection elsewhere.

Terminal nodes (finished or truncated) are never expanded. Selection descends into the best child
by UCT whose subtree still holds an expandable leaf, falling back to the next best, so an exhausted
subtree never traps it; when the whole tree is exhausted the problem stops early
(info["exhausted"] = True) with budget unspent.

Candidates = every terminal leaf. If no leaf finished naturally when the budget is spent, the
unfinished leaf with the highest R(node) is added as a truncated candidate (it votes only when
truncated solutions are allowed to), so the result is never silently empty.

    from strategies.mcts import MCTS
    results = MCTS(root_width=4).search(problems, 32, ctx)
"""

from __future__ import annotations

import math
from typing import Optional

from pydantic import Field

from rebase.registry import STRATEGIES
from rebase.types import Node, Problem, Reduction, SearchResult
from strategies.base import SearchContext, Strategy, StrategyParams
from strategies.tree import Tree, grow, new_trees, score, terminal


def uct(q: float, n: int, n_parent: int, c: float) -> float:
    return q + c * math.sqrt(math.log(max(n_parent, 1)) / n)


def select_leaves(tree: Tree, count: int, c: float) -> list[Node]:
    """Up to `count` distinct expandable leaves, chosen by UCT with virtual loss between picks."""
    pending: dict[int, int] = {}  # node id -> virtual visits (value 0) of this round
    picked: set[int] = set()

    def eff(node: Node) -> tuple[float, int]:
        extra = pending.get(node.id, 0)
        n = node.visits + extra
        return (node.value * node.visits / n if n else 0.0), n

    def descend(node: Node) -> Optional[Node]:
        kids = tree.kids(node)
        if not kids:
            return node if not terminal(node) and node.id not in picked else None
        _, n_parent = eff(node)
        ranked = sorted(kids, key=lambda k: (-uct(*eff(k), n_parent, c), k.id))
        for k in ranked:  # fall back to the next best child when a subtree is exhausted
            leaf = descend(k)
            if leaf is not None:
                return leaf
        return None

    out: list[Node] = []
    for _ in range(count):
        leaf = descend(tree.root)
        if leaf is None:
            break
        out.append(leaf)
        picked.add(leaf.id)
        node: Optional[Node] = leaf
        while node is not None:
            pending[node.id] = pending.get(node.id, 0) + 1
            node = tree.parent(node)
    return out


def backup(tree: Tree, child: Node) -> None:
    """A new child counts as one visit of value R(child); its ancestors' Q are running means."""
    child.visits, child.value = 1, float(child.reward or 0.0)
    node = tree.parent(child)
    while node is not None:
        node.visits += 1
        node.value += (child.value - node.value) / node.visits
        node = tree.parent(node)


@STRATEGIES.register("mcts")
class MCTS(Strategy):
    """Monte Carlo tree search with PRM rewards as values (UCT selection, expansion, backup)."""

    name = "mcts"
    needs_prm = True
    default_aggregator = "weighted_majority"

    class Params(StrategyParams):
        exploration: float = Field(1.0, ge=0)  # c in UCT (paper: 1)
        root_width: int = Field(4, ge=1)  # children of the root (paper: 4, 8, 16)
        inner_width: int = Field(2, ge=1)  # children of any other selected leaf (paper: 2)
        parallel: int = Field(1, ge=1)  # leaves selected per problem per round (virtual loss)
        reward: Reduction = "last"  # a new node's value from its path scores

    def search(self, problems: list[Problem], budget: int, ctx: SearchContext) -> list[SearchResult]:
        if budget < 1:
            raise ValueError(f"MCTS budget must be >= 1 expansion, got {budget}")
        p = self.params
        trees = new_trees(problems, ctx)
        left = [budget] * len(trees)
        rounds = [0] * len(trees)
        exhausted = [False] * len(trees)
        rnd = 0
        while True:
            items: list[tuple[Tree, Node, int]] = []
            for i, t in enumerate(trees):
                if left[i] <= 0 or exhausted[i]:
                    continue
                picked = select_leaves(t, min(p.parallel, left[i]), p.exploration)
                if not picked:
                    exhausted[i] = True
                    continue
                rounds[i] += 1
                for leaf in picked:
                    items.append((t, leaf, p.root_width if leaf.parent is None else p.inner_width))
                    left[i] -= 1
            if not items:
                break
            groups = grow(items, ctx, rnd, lambda nodes: score(nodes, ctx, p.reward))
            for t, kids in groups:
                for n in kids:
                    backup(t, n)
            rnd += 1
        return [
            t.result(
                self.tree_candidates(t, ctx),
                {"rounds": rounds[i], "expansions": budget - left[i], "exhausted": exhausted[i]},
            )
            for i, t in enumerate(trees)
        ]

    @classmethod
    def saved_candidates(cls, nodes: list[Node], ctx: SearchContext) -> list:
        """As the search returned them: terminal leaves, or the best open leaf when none finished."""
        return cls.tree_candidates(Tree.from_nodes(nodes), ctx)

    @staticmethod
    def tree_candidates(tree: Tree, ctx: SearchContext):
        cands = tree.candidates(ctx)
        if not any(c.finished for c in cands):
            open_leaves = [n for n in tree.leaves() if not terminal(n)]
            if open_leaves:
                best = max(open_leaves, key=lambda n: (n.reward if n.reward is not None else -math.inf, -n.id))
                cands.append(tree.candidate(best, ctx, truncated=True))
        return cands
