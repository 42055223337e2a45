"""Independent sampling: `greedy` and the N-sample strategies `majority`, `best_of_n`,
`weighted_majority` (N whole solutions + that aggregator).

All problems of a batch go to the backend in ONE generate call (one request per problem with n=N)
and all candidates to the PRM in ONE score call. Each candidate keeps its own token counts in
`SearchResult.info["samples"]`, so the evaluator can price any k-subset of a shared pool (sample
reuse, eval/pool.py) without generating again.
"""

from __future__ import annotations

from typing import Any, Optional

from rebase.registry import STRATEGIES
from rebase.tasks.grading import extract_answer
from rebase.types import Candidate, GenerationRequest, Node, Problem, SearchResult
from reward_models.base import ScoreRequest, book, score_checked
from strategies.base import SearchContext, Strategy, request_seed


def candidate_from_text(text: str, finish_reason: str, generated: int, ctx: SearchContext) -> Candidate:
    """A whole sampled solution as a Candidate (steps, answer, finish flags); replay reuses it."""
    text = ctx.prompts.truncate_after_answer(text)
    steps = ctx.prompts.split_steps(text)
    final = any(ctx.prompts.is_final(s) for s in steps)
    # a sample cut by max_tokens before it gave an answer is truncated, not finished
    truncated = finish_reason == "length" and not final
    return Candidate(
        steps=steps,
        answer=extract_answer(text, ctx.dataset),
        finished=not truncated,
        truncated=truncated,
        generated_tokens=generated,
    )


def score_candidates(
    problems: list[Problem], cands: list[list[Candidate]], ctx: SearchContext, ledgers: list[Any]
) -> list[list[int]]:
    """Score every step of every candidate of every problem in ONE PRM call; returns (PRM tokens
    read, PRM head rows computed, PRM tokens served from its prefix cache) per candidate ((0, 0, 0)
    for a candidate with no steps, which is never scored). A wrong number of results or scores, or a non-finite score, is a PRMError naming
    the sample, as in tree search."""
    reqs, where = [], []
    for pi, (p, cs) in enumerate(zip(problems, cands)):
        for ci, c in enumerate(cs):
            if c.steps:
                reqs.append(ScoreRequest(p.question, c.steps, tag=f"problem {p.id} sample {ci}"))
                where.append((pi, ci))
    prm_tokens = [[(0, 0, 0)] * len(cs) for cs in cands]
    for (pi, ci), res in zip(where, score_checked(ctx.prm, reqs)):
        cands[pi][ci].step_scores = [float(x) for x in res.scores]
        prm_tokens[pi][ci] = (
            res.prompt_tokens,
            res.head_rows if res.head_rows is not None else len(res.scores),
            res.cached_tokens,
        )
        book(ledgers[pi], ctx.prm, res)
    return prm_tokens


class NSample(Strategy):
    """N independent whole-solution samples; the aggregator makes it majority / best-of-n / weighted."""

    poolable = True  # smaller budgets and other aggregators can be derived from a larger pool
    scores_on_request = True  # PRM-scored only when an aggregator of the unit reads scores
    default_aggregator = "majority"

    @classmethod
    def saved_candidates(cls, nodes: list[Node], ctx: SearchContext) -> list[Candidate]:
        """Every node under the root is one whole sample, scored as it was (replay's rule)."""
        out = []
        for n in nodes[1:]:
            c = candidate_from_text(n.text, n.finish_reason or "stop", n.path_tokens, ctx)
            c.step_scores = list(n.step_scores) or None
            out.append(c)
        return out

    def temperature(self, ctx: SearchContext) -> float:
        return ctx.sampling.temperature

    def search(
        self, problems: list[Problem], budget: int, ctx: SearchContext, score: Optional[bool] = None
    ) -> list[SearchResult]:
        from rebase.flops import Ledger

        gen = ctx.generator
        prompts = [ctx.prompts.render(p, gen) for p in problems]
        reqs = [
            GenerationRequest(
                prompt=pr,
                n=budget,
                temperature=self.temperature(ctx),
                top_p=ctx.sampling.top_p,
                max_tokens=ctx.sampling.max_tokens,
                stop=ctx.prompts.solution_stops,
                seed=request_seed(ctx.seed, p.id, "samples"),
            )
            for p, pr in zip(problems, prompts)
        ]
        outs = gen.generate(reqs)
        ledgers = [Ledger() for _ in problems]
        cands: list[list[Candidate]] = []
        for led, comps in zip(ledgers, outs):
            cs = []
            for c in comps:
                led.add(gen.name, gen.flop_spec, "policy", c.prompt_tokens, c.cached_tokens, c.generated_tokens)
                cs.append(candidate_from_text(c.text, c.finish_reason, c.generated_tokens, ctx))
            cands.append(cs)
        do_score = (self.needs_prm if score is None else score) and ctx.prm is not None
        prm_tokens = (
            score_candidates(problems, cands, ctx, ledgers) if do_score else [[(0, 0, 0)] * len(cs) for cs in cands]
        )
        results = []
        for p, led, comps, cs, pt in zip(problems, ledgers, outs, cands, prm_tokens):
            nodes = [Node(id=0, parent=None, depth=0, text="")]
            for i, (c, comp) in enumerate(zip(cs, comps)):
                c.node_id = i + 1
                nodes.append(
                    Node(
                        id=i + 1,
                        parent=0,
                        depth=1,
                        text=comp.text,
                        token_ids=list(comp.token_ids),
                        step_scores=list(c.step_scores or []),
                        finish_reason=comp.finish_reason,
                        finished=c.finished,
                        truncated=c.truncated,
                        path_tokens=comp.generated_tokens,
                    )
                )
            samples = [
                {
                    "prompt_tokens": comp.prompt_tokens,
                    "cached_tokens": comp.cached_tokens,
                    "generated_tokens": comp.generated_tokens,
                    "prm_tokens": t,
                    "prm_head_rows": rows,
                    "prm_cached_tokens": cached,
                }
                for comp, (t, rows, cached) in zip(comps, pt)
            ]
            results.append(SearchResult(p.id, cs, led, nodes=nodes, info={"samples": samples}))
        return results


@STRATEGIES.register("greedy")
class Greedy(NSample):
    """One sample at temperature 0 (budget 1)."""

    name = "greedy"
    poolable = False
    fixed_budget = 1

    def temperature(self, ctx: SearchContext) -> float:
        return 0.0


@STRATEGIES.register("majority")
class Majority(NSample):
    """N samples, the most frequent answer wins (no PRM)."""

    name = "majority"
    default_aggregator = "majority"


@STRATEGIES.register("best_of_n")
class BestOfN(NSample):
    """N samples, the PRM's highest-scored one wins."""

    name = "best_of_n"
    needs_prm = True
    default_aggregator = "best_of_n"


@STRATEGIES.register("weighted_majority")
class WeightedMajority(NSample):
    """N samples, answers voted with their PRM scores as weights."""

    name = "weighted_majority"
    needs_prm = True
    default_aggregator = "weighted_majority"
