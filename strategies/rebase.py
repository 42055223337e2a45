"""REBASE: reward-balanced tree search (Wu et al. 2025, section 3.1.2), batched across problems.

Budget N = the number of solutions wanted. Depth 1 samples N first steps from the root. Then, each
round: the PRM scores every new node and R(node) reduces its path scores (`reward`: last | min |
prod | mean); new nodes that are terminal (finished, or truncated by the token/depth cap) leave the
frontier and use one unit each, B_i = B_{i-1} - finished_i; the search stops at B_i = 0; every
unfinished node j of the round gets W_j = B_i * softmax(R_j / T_b) children (`allocate`). Nodes
granted 0 children are pruned. Two schedules give the same trees for a given seed:
- lock-step rounds (any backend): one generate call and one score call per round for the whole
  batch; a problem that is done drops out of later rounds;
- `pipeline: true` (backends with continuous batching, i.e. transformers; off by default, as
  it was not measured faster on a CPU): one generate call for the whole search; a problem whose round is done is scored and its next round joins the running
  decode at once, so the decode batch never waits for another problem's slowest step.

Rounding (`rounding`):
- `sequential_ceil` (default, the released code's): sort by reward, descending; give each node
  ceil(b_rem * w_j / w_rem), b_rem and w_rem shrinking. Exactly B_i children in total, so the
  frontier always holds B_i nodes and every problem ends with exactly N terminal leaves.
- `round` (the paper's): round(B_i * w_j), halves rounded up. The total may miss B_i. If every
  node rounds to 0 the search would stall, so the top-reward node always gets at least 1. B_i may
  then go below 0 (the search stops) or the frontier may empty while B_i > 0 (it stops too): the
  number of candidates can differ from N.

Token cap (`token_cap`): `path` (default) makes sampling.max_tokens cap the tokens of the whole
path; `step` applies it the released code's way, to each step's own tokens, so it never fires while
max_step_tokens < max_tokens and a path runs on to the depth cap (docs/FIDELITY.md).

    from strategies.rebase import Rebase
    results = Rebase(balance_temperature=0.2).search(problems, 16, ctx)
"""

from __future__ import annotations

import math
from typing import Literal, Optional, Sequence

from pydantic import Field

from rebase.registry import STRATEGIES
from rebase.errors import RunFailure
from rebase.types import GenerationRequest, Node, Problem, Reduction, SearchResult
from strategies.aggregators import vote_totals, voters
from strategies.base import SearchContext, Strategy, StrategyParams
from strategies.stopping import leader_probability
from strategies.tree import Tree, attach, grow, new_trees, request_for, score, terminal

State = tuple[dict[int, int], dict[int, int], dict[int, bool]]  # B_i, rounds done, stopped early

# ceil() must not turn 2.0000000001 (float noise in b_rem * w_j / w_rem) into 3
_EPS = 1e-9


def allocate(budget: int, rewards: Sequence[float], temperature: float, rounding: str = "sequential_ceil") -> list[int]:
    """Children per frontier node (in input order): W_j = budget * softmax(R_j / T_b), rounded.
    Worked example (sequential_ceil, budget 16, rewards [0.9, 0.8, 0.5, 0.2]):
    T_b=0.2 -> [10, 5, 1, 0]; T_b=0.1 -> [12, 4, 0, 0]."""
    if temperature <= 0:
        raise ValueError(f"balance temperature must be > 0, got {temperature}")
    if budget <= 0 or not rewards:
        return [0] * len(rewards)
    top = max(rewards)
    exps = [math.exp((r - top) / temperature) for r in rewards]  # shifted: no overflow
    total = sum(exps)
    weights = [e / total for e in exps]
    order = sorted(range(len(rewards)), key=lambda j: -rewards[j])  # stable: ties keep input order
    out = [0] * len(rewards)
    if rounding == "sequential_ceil":
        b_rem, w_rem = budget, 1.0
        for j in order:
            if b_rem <= 0:
                break
            share = b_rem * weights[j] / w_rem if w_rem > 0 else b_rem
            out[j] = min(b_rem, max(0, math.ceil(share - _EPS)))
            b_rem -= out[j]
            w_rem -= weights[j]
        return out
    if rounding == "round":
        for j in order:
            out[j] = math.floor(budget * weights[j] + 0.5)
        out[order[0]] = max(1, out[order[0]])  # never stall: the best node always grows
        return out
    raise ValueError(f"unknown rounding '{rounding}'; available: sequential_ceil, round")


@STRATEGIES.register("rebase")
class Rebase(Strategy):
    """REBASE: each round expands every open node with children in proportion to softmax(PRM / T)."""

    name = "rebase"
    needs_prm = True
    default_aggregator = "weighted_majority"

    class Params(StrategyParams):
        balance_temperature: float = Field(0.1, gt=0)  # T_b in softmax(R / T_b); paper 0.1, released code 0.2
        rounding: Literal["sequential_ceil", "round"] = "sequential_ceil"  # how W_j becomes an integer
        reward: Reduction = "last"  # R(node) from its path's step scores
        # stop a problem early once its finished candidates' PRM-weighted vote is decided at this
        # confidence (the Beta rule of strategies/stopping.py); None: always spend the whole budget
        stop_confidence: Optional[float] = Field(None, gt=0.5, lt=1.0)
        # a problem whose round is done starts its next one inside the running decode (backends
        # with generate(..., refill=...), i.e. transformers); same trees as lock-step rounds. Off by
        # default: not measured faster on a CPU (docs/PERFORMANCE.md)
        pipeline: bool = False
        # what sampling.max_tokens caps: `path` the tokens of the whole path (a true cap); `step` each
        # step's own tokens, the released code's rule, which never fires while max_step_tokens <
        # max_tokens (docs/FIDELITY.md); strategies/tree.py
        token_cap: Literal["path", "step"] = "path"

    def decided(self, tree: Tree, ctx: SearchContext) -> bool:
        """Whether the finished candidates so far already agree (only with `stop_confidence`)."""
        conf = getattr(self.params, "stop_confidence", None)  # subclasses' Params may lack it
        if conf is None:
            return False
        cands = tree.candidates(ctx)
        n_voters = len(voters(cands, ctx.include_truncated))
        totals = vote_totals(cands, True, self.params.reward, ctx.include_truncated, ctx.dataset)
        return leader_probability(totals, n_voters) >= conf

    def allocate(self, budget: int, rewards: list[float]) -> list[int]:
        """Children per frontier node this round (subclasses such as beam search override it)."""
        return allocate(budget, rewards, self.params.balance_temperature, self.params.rounding)

    def allocate_round(self, tree: Tree, rnd: int, budget: int, rewards: list[float], ctx: SearchContext) -> list[int]:
        """`allocate` with the problem and round at hand (a random allocation seeds itself from them)."""
        return self.allocate(budget, rewards)

    def score_round(self, nodes: list[tuple[Tree, Node]], ctx: SearchContext) -> None:
        """Set step_scores and R(node) of a round's new nodes (one PRM call; beam search may look ahead)."""
        score(nodes, ctx, self.params.reward)

    def search(self, problems: list[Problem], budget: int, ctx: SearchContext) -> list[SearchResult]:
        if budget < 1:
            raise ValueError(f"{self.name} budget must be >= 1, got {budget}")
        trees = new_trees(problems, ctx, getattr(self.params, "token_cap", "path"))  # subclasses' Params may lack it
        remaining = {id(t): budget for t in trees}  # B_i per problem
        rounds = {id(t): 0 for t in trees}
        stopped = {id(t): False for t in trees}  # early stop (stop_confidence) per problem
        first = [(t, t.root, budget) for t in trees]
        state = (remaining, rounds, stopped)
        if self.pipelined(ctx):
            self._pipelined(first, ctx, state)
        else:
            self._lock_step(first, ctx, state)
        out = []
        for t in trees:
            info = {"rounds": rounds[id(t)], "budget_left": max(remaining[id(t)], 0)}
            if getattr(self.params, "stop_confidence", None) is not None:  # the record says what the stop saved
                info["record"] = {"stopped_early": stopped[id(t)], "budget_left": info["budget_left"]}
            out.append(t.result(t.candidates(ctx), info))
        return out

    def pipelined(self, ctx: SearchContext) -> bool:
        """Whether this search runs pipelined: asked for (`pipeline`), a backend with `refill`, and
        rounds scored without generating (beam search's lookahead rollouts generate)."""
        return (
            bool(getattr(self.params, "pipeline", False))
            and getattr(ctx.generator, "supports_refill", False)
            and not getattr(self.params, "lookahead", 0)
        )

    def _next_round(self, t: Tree, kids: list[Node], state: State, ctx: SearchContext) -> list[tuple[Tree, Node, int]]:
        """After a scored round of tree `t`: B_i -= its new terminal nodes; the rest get children."""
        remaining, rounds, stopped = state
        key = id(t)
        rounds[key] += 1
        remaining[key] -= sum(1 for n in kids if terminal(n))
        frontier = [n for n in kids if not terminal(n)]
        if remaining[key] <= 0 or not frontier:
            return []  # done: drops out of later rounds
        if self.decided(t, ctx):
            stopped[key] = True
            return []  # the finished candidates agree: the rest of the budget is not spent
        alloc = self.allocate_round(t, rounds[key], remaining[key], [n.reward for n in frontier], ctx)
        return [(t, n, w) for n, w in zip(frontier, alloc) if w > 0]  # 0 children: pruned

    def _lock_step(self, items: list[tuple[Tree, Node, int]], ctx: SearchContext, state: State) -> None:
        """All problems in step: one generate call and one score call per round."""
        rnd = 0
        while items:
            groups = grow(items, ctx, rnd, lambda nodes: self.score_round(nodes, ctx))
            rnd += 1
            fresh: dict[int, tuple[Tree, list[Node]]] = {}
            for t, kids in groups:  # a tree may have several expanded nodes this round
                fresh.setdefault(id(t), (t, []))[1].extend(kids)
            items = []
            for t, kids in fresh.values():
                items.extend(self._next_round(t, kids, state, ctx))

    def _pipelined(self, items: list[tuple[Tree, Node, int]], ctx: SearchContext, state: State) -> None:
        """ONE generate call for the whole search: as soon as every request of a problem's round is
        done, that round's children are scored (one PRM call for all problems done at the same decode
        step) and its next round joins the running decode (generate's `refill`), so no problem
        waits for another's slowest step. A tree's children are attached in request order once its
        round is complete, and seeds are keyed by the tree's own round: the same tree as lock-step."""
        plan: list[tuple[Tree, Node, int]] = []  # request index -> (tree, node, k)
        waiting: dict[int, list[int]] = {}  # tree -> its open round's request indices
        got: dict[int, list] = {}

        def submit(batch: list[tuple[Tree, Node, int]]) -> list[GenerationRequest]:
            reqs = []
            for t, n, k in batch:
                waiting.setdefault(id(t), []).append(len(plan))
                plan.append((t, n, k))
                reqs.append(request_for(t, n, k, ctx, state[1][id(t)]))
            return reqs

        def refill(done: list[tuple[int, list]]) -> list[GenerationRequest]:
            for i, comps in done:
                got[i] = comps
            ready = [key for key in {id(plan[i][0]) for i, _ in done} if all(j in got for j in waiting[key])]
            groups = []
            for key in sorted(ready, key=lambda k: waiting[k][0]):  # submission order: deterministic
                idx = waiting.pop(key)
                t = plan[idx[0]][0]
                groups.append((t, [kid for j in idx for kid in attach(*plan[j], got.pop(j), ctx)]))
            self.score_round([(t, n) for t, kids in groups for n in kids], ctx)
            nxt = []
            for t, kids in groups:
                nxt.extend(self._next_round(t, kids, state, ctx))
            return submit(nxt)

        outs = ctx.generator.generate(submit(items), refill=refill)
        if len(outs) != len(plan) or waiting:
            raise RunFailure(
                f"generator {ctx.generator.name} returned {len(outs)} results for {len(plan)} "
                f"requests ({len(waiting)} problems left waiting)"
            )
