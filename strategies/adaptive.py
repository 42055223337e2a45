"""Adaptive budgets: N-sample voting that samples in waves and stops each problem once its vote is
decided (`adaptive_majority`, `adaptive_weighted_majority`).

Why: fixed-N voting spends the same compute on a problem whose first four samples agree as on one
whose samples scatter. Adaptive-consistency (Aggarwal et al. 2023) stops sampling a problem as soon
as more samples are unlikely to change the winner, which saves most of the compute on easy problems.

How it runs (budget = the MAXIMUM number of samples per problem):
- wave w: every problem still open gets `wave` more samples (fewer in the last wave, so a problem
  never exceeds the budget), all problems of the batch in ONE generate call and, for the weighted
  vote, ONE PRM call (it is the plain N-sample search of strategies/sampling.py run on the open
  problems);
- after each wave the vote totals of the strategy's aggregator (strategies.aggregators.vote_totals)
  go through the stopping rule of strategies/stopping.py (the Beta rule, `confidence` 0.95); a
  decided problem drops out of later waves, the others go on until the budget is spent;
- the samples of wave w of problem p are seeded by (run seed, w, p): a problem's samples, and so
  its stop, are the same whatever else is in its batch;
- the ledger holds exactly the calls made (one prompt prefill per wave, unless the backend served it
  from its prefix cache); the record says how many samples the problem used (`samples_used`), in how
  many waves, why it stopped (`stop`: decided | max_budget), the leader's posterior probability,
  and which fixed-N strategy it stops early (`adapts`), so the report can set the two side by side.
- nested budgets: since wave w is seeded by w, a run at maximum M is exactly the first waves of a
  run at any larger maximum (when M is a whole number of waves). The runner makes one run at the
  largest such budget and derives the smaller ones from it (`at_budget`): the adaptive curve costs
  one run, and each derived record is what its own run would have written, ledger included.

    strategies:
      - {name: adaptive_weighted_majority, budgets: [16, 64], wave: 4, confidence: 0.95}
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, ClassVar

from pydantic import Field, PositiveInt

from rebase.flops import Ledger
from rebase.registry import STRATEGIES
from rebase.types import Candidate, Node, Problem, Reduction, SearchResult
from strategies.aggregators import vote_totals, voters
from strategies.base import SearchContext, Strategy, StrategyParams, request_seed
from strategies.sampling import NSample
from strategies.stopping import leader_probability


class AdaptiveParams(StrategyParams):
    wave: PositiveInt = 4  # samples per open problem per wave
    confidence: float = Field(0.95, gt=0.5, lt=1.0)  # stop when P(leader is the majority) >= this
    # step-score reduction of the weighted stopping tally; the runner passes the entry's `reduction`
    reduction: Reduction = "last"


class _Problem:
    """What one problem has gathered so far, across waves."""

    def __init__(self) -> None:
        self.cands: list[Candidate] = []
        self.nodes: list[Node] = [Node(id=0, parent=None, depth=0, text="")]
        self.samples: list[dict] = []
        self.ledger = Ledger()
        self.waves = 0
        self.prob = 0.0
        self.stop = "max_budget"
        self.wave_ends: list[int] = []  # samples used after each wave
        self.wave_probs: list[float] = []  # the leader's posterior after each wave
        self.wave_ledgers: list[Ledger] = []  # each wave's calls, to cut the run at a wave's end

    def add(self, res: SearchResult) -> None:
        offset = len(self.nodes) - 1
        for node in res.nodes[1:]:  # node 0 is the wave's root, the same prompt as ours
            self.nodes.append(replace(node, id=node.id + offset, parent=0))
        for c in res.candidates:
            self.cands.append(replace(c, node_id=(c.node_id or 0) + offset))
        self.samples += res.info.get("samples", [])
        self.ledger.extend(res.ledger)
        self.wave_ledgers.append(res.ledger)
        self.wave_ends.append(len(self.cands))
        self.waves += 1


class AdaptiveVote(Strategy):
    """Waves of samples until the vote is decided or the budget (maximum samples) is spent."""

    weighted: ClassVar[bool] = False
    adapts: ClassVar[str] = "majority"  # the fixed-N strategy it stops early (the report compares them)
    takes_reduction: ClassVar[bool] = True  # the runner passes the entry's step-score reduction
    Params = AdaptiveParams

    def search(self, problems: list[Problem], budget: int, ctx: SearchContext) -> list[SearchResult]:
        state = [_Problem() for _ in problems]
        sampler = NSample()
        open_ = list(range(len(problems)))
        used = 0  # every open problem has used the same number of samples
        while open_:
            n = min(self.params.wave, budget - used)
            wave_ctx = replace(ctx, seed=request_seed(ctx.seed, "adaptive wave", state[open_[0]].waves))
            results = sampler.search([problems[i] for i in open_], n, wave_ctx, score=self.weighted)
            used += n
            still = []
            for i, res in zip(open_, results):
                st = state[i]
                st.add(res)
                st.prob = self.posterior(st.cands, ctx)
                st.wave_probs.append(st.prob)
                if st.prob >= self.params.confidence:
                    st.stop = "decided"
                elif used < budget:
                    still.append(i)
            open_ = still
        return [self._result(p, st) for p, st in zip(problems, state)]

    def posterior(self, cands: list[Candidate], ctx: SearchContext) -> float:
        totals = vote_totals(cands, self.weighted, self.params.reduction, ctx.include_truncated, ctx.dataset)
        n_voters = len(voters(cands, ctx.include_truncated)) if self.weighted else None
        return leader_probability(totals, n_voters)

    def _result(self, p: Problem, st: _Problem) -> SearchResult:
        record: dict[str, Any] = {
            "samples_used": len(st.cands),
            "waves": st.waves,
            "stop": st.stop,
            "leader_probability": round(st.prob, 6),
            "adapts": self.adapts,
        }
        return SearchResult(
            p.id,
            st.cands,
            st.ledger,
            nodes=st.nodes,
            info={
                "samples": st.samples,
                "record": record,
                "wave_ends": st.wave_ends,
                "wave_probs": st.wave_probs,
                "wave_ledgers": st.wave_ledgers,
            },
        )

    # -- nested budgets: a run at a larger maximum holds the run at every smaller one --------------
    @classmethod
    def nestable(cls, budget: int, options: dict) -> bool:
        """Whether a run at `budget` is exactly a prefix of a run at any larger maximum: waves are
        seeded by their index, so it is when every wave before the budget is whole."""
        return budget % cls.Params.model_validate(options).wave == 0

    def at_budget(self, res: SearchResult, budget: int) -> SearchResult:
        """The result a run with maximum `budget` (nestable) would have given: `res` itself when
        the problem stopped within it, else `res` cut after the wave that reaches `budget`."""
        ends = res.info["wave_ends"]
        if ends[-1] <= budget:
            return res
        k = next(i for i, e in enumerate(ends) if e >= budget) + 1  # waves a run at `budget` makes
        n = ends[k - 1]
        ledger = Ledger()
        for led in res.info["wave_ledgers"][:k]:
            ledger.extend(led)
        # it went on past `budget`, so the vote was not decided after wave k
        record = {
            **res.info["record"],
            "samples_used": n,
            "waves": k,
            "stop": "max_budget",
            "leader_probability": round(res.info["wave_probs"][k - 1], 6),
        }
        return SearchResult(
            res.problem_id,
            res.candidates[:n],
            ledger,
            nodes=res.nodes[: n + 1],
            info={
                "samples": res.info["samples"][:n],
                "record": record,
                "wave_ends": ends[:k],
                "wave_probs": res.info["wave_probs"][:k],
                "wave_ledgers": res.info["wave_ledgers"][:k],
            },
        )


@STRATEGIES.register("adaptive_majority")
class AdaptiveMajority(AdaptiveVote):
    """Adaptive sampling, stopped on the majority vote's Beta rule."""

    name = "adaptive_majority"
    default_aggregator = "majority"


@STRATEGIES.register("adaptive_weighted_majority")
class AdaptiveWeightedMajority(AdaptiveVote):
    """Adaptive sampling, every wave PRM-scored, stopped on the PRM-weighted vote's Beta rule."""

    name = "adaptive_weighted_majority"
    needs_prm = True
    weighted = True
    adapts = "weighted_majority"
    default_aggregator = "weighted_majority"
