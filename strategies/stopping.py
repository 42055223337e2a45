"""When is a vote decided? The stopping rule of adaptive sampling (strategies/adaptive.py).

Why: a fixed number of samples per problem wastes compute on easy problems, where the first few
samples already agree, and is too little on hard ones. Adaptive-consistency (Aggarwal et al. 2023,
"Let's Sample Step by Step") samples until the vote is decided and stops there.

Rule (their Beta stopping criterion): let v1 >= v2 be the vote masses of the two leading answers.
Model the leader's share among those two as p ~ Beta(v1 + 1, v2 + 1) (a uniform prior updated by
the votes); the vote is decided when

    P(p > 1/2) = 1 - I_{1/2}(v1 + 1, v2 + 1) >= confidence        (default confidence 0.95)

where I is the regularised incomplete beta function. Examples: 4-0 gives 0.969 (stop), 3-1 gives
0.813 (go on), 6-1 gives 0.965 (stop), 5-2 gives 0.855 (go on). With no valid vote yet the vote is
never decided.

Weighted votes (weighted_majority): the masses are sums of reduced PRM scores. They are rescaled
to total the number of voters before the rule is applied, so the evidence still counts samples
(n votes are n votes, whatever the PRM's scale) while the split between answers follows the PRM.

How: `decided(vote_totals(cands, weighted), 0.95)` with `strategies.aggregators.vote_totals`.
"""

from __future__ import annotations

from typing import Mapping

from scipy.special import betainc


def leader_probability(totals: Mapping[str, float], n_voters: int | None = None) -> float:
    """P(the leading answer is the majority between the two leading answers) under the Beta rule;
    0.0 when there is no vote. `n_voters`: rescale the masses to total this many votes (weighted)."""
    masses = sorted((float(v) for v in totals.values()), reverse=True)
    total = sum(masses)
    if not masses or total <= 0:
        return 0.0
    if n_voters is not None:
        masses = [m * n_voters / total for m in masses]
    v1 = masses[0]
    v2 = masses[1] if len(masses) > 1 else 0.0
    # betainc(a, b, x) is the regularised I_x(a, b); P(p > 1/2) = 1 - I_{1/2}(v1 + 1, v2 + 1)
    return float(1.0 - betainc(v1 + 1.0, v2 + 1.0, 0.5))


def decided(totals: Mapping[str, float], confidence: float, n_voters: int | None = None) -> bool:
    return leader_probability(totals, n_voters) >= confidence
