"""Particle filtering (Puri et al. 2025, "A Probabilistic Inference Approach to Inference-Time Scaling
of LLMs using Particle-Based Monte Carlo Methods"), batched across problems.

Budget N = the number of particles. Depth 1 samples N first steps from the root (one particle
each). Each round the PRM scores every new step; R(particle) reduces its path's scores (`reward`,
default `last`). Particles that are terminal (finished, or truncated by the token/depth cap) are kept
as they are and use one unit each, B_i = B_{i-1} - finished_i; the search stops at B_i = 0. The
unfinished particles are weighted
    w_j = softmax(logit(R_j) / temperature)        (R clipped to [1e-7, 1 - 1e-7])
and B_i of them are drawn with replacement in proportion to w_j (`resampling: multinomial`, the
default, or `systematic`: one uniform offset, B_i evenly spaced pointers, lower variance). A
particle drawn k times is extended by k independent next steps (one request with n = k); a particle
drawn 0 times dies. So exactly N particles exist after every round and every problem ends with
exactly N terminal leaves: the candidates (aggregated by weighted majority unless configured).

The draws come from a generator seeded by (run seed, problem id, round), so a problem's search does
not depend on its batch and reruns are identical. All problems move in lock-step rounds: one
generate call and one score call per round for the whole batch (REBASE's round loop; only the
allocation differs: REBASE's is deterministic, softmax(R / T_b) rounded, this one is a random draw
from softmax(logit(R) / T), so its expectation is B_i * w_j).

    from strategies.particle_filtering import ParticleFiltering
    results = ParticleFiltering(resampling="systematic").search(problems, 16, ctx)
"""

from __future__ import annotations

import math
import random
from typing import Literal, Sequence

from pydantic import Field

from rebase.registry import STRATEGIES
from rebase.types import Reduction
from strategies.base import SearchContext, StrategyParams, request_seed
from strategies.rebase import Rebase
from strategies.tree import Tree

_CLIP = 1e-7  # keeps logit(R) finite for a PRM score of exactly 0 or 1


def particle_weights(rewards: Sequence[float], temperature: float) -> list[float]:
    """softmax(logit(R_j) / temperature) over the particles."""
    if temperature <= 0:
        raise ValueError(f"particle filtering temperature must be > 0, got {temperature}")
    logits = []
    for r in rewards:
        r = min(max(float(r), _CLIP), 1 - _CLIP)
        logits.append(math.log(r / (1 - r)) / temperature)
    top = max(logits)
    exps = [math.exp(x - top) for x in logits]
    total = sum(exps)
    return [e / total for e in exps]


def multinomial(weights: Sequence[float], n: int, rng: random.Random) -> list[int]:
    """How often each index is drawn in `n` independent draws with probabilities `weights`."""
    counts = [0] * len(weights)
    for j in rng.choices(range(len(weights)), weights=weights, k=n):
        counts[j] += 1
    return counts


def systematic(weights: Sequence[float], n: int, rng: random.Random) -> list[int]:
    """Systematic resampling: pointers (u + k) / n, k = 0..n-1, u ~ U[0, 1), over the cumulative
    weights; index j gets floor or ceil of n * w_j draws."""
    counts = [0] * len(weights)
    if n <= 0 or not weights:
        return counts
    u = rng.random()
    cum, j = weights[0], 0
    for k in range(n):
        pointer = (u + k) / n
        while pointer >= cum and j < len(weights) - 1:
            j += 1
            cum += weights[j]
        counts[j] += 1
    return counts


RESAMPLERS = {"multinomial": multinomial, "systematic": systematic}


def resample(rewards: Sequence[float], n: int, temperature: float, method: str, rng: random.Random) -> list[int]:
    """Copies of each particle (input order) after resampling `n` of them; sums to n."""
    if method not in RESAMPLERS:
        raise ValueError(f"unknown resampling '{method}'; available: {', '.join(RESAMPLERS)}")
    if n <= 0 or not rewards:
        return [0] * len(rewards)
    return RESAMPLERS[method](particle_weights(rewards, temperature), n, rng)


@STRATEGIES.register("particle_filtering")
class ParticleFiltering(Rebase):
    """Particle filtering: N particles, the open ones resampled each round from softmax(logit(PRM) / T)."""

    name = "particle_filtering"
    needs_prm = True
    default_aggregator = "weighted_majority"

    class Params(StrategyParams):
        temperature: float = Field(1.0, gt=0)  # T in softmax(logit(R) / T); its_hub uses 1
        resampling: Literal["multinomial", "systematic"] = "multinomial"  # how the particles are drawn
        reward: Reduction = "last"  # R(particle) from its path's step scores

    def allocate_round(self, tree: Tree, rnd: int, budget: int, rewards: list[float], ctx: SearchContext) -> list[int]:
        rng = random.Random(request_seed(ctx.seed, tree.problem.id, "resample", rnd))
        return resample(rewards, budget, self.params.temperature, self.params.resampling, rng)
