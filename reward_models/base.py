"""The PRM protocol: score every step of many solution paths, exactly one score per step.

    prm.score([ScoreRequest(question, steps), ...]) -> [[s_1, ..., s_k], ...]

A PRM call scores a whole round (every new node of every problem in a batch) in ONE call; one
forward pass scores all steps of a path. `score` raises rebase.errors.PRMError (naming the path)
when a model yields no score, NaN, or a count different from the number of steps: never a silently
shorter list. Each PRM also reports the tokens it read, so the ledger can price them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Optional, Protocol, runtime_checkable

from rebase.errors import PRMError
from rebase.flops import FlopSpec


@dataclass
class ScoreRequest:
    question: str
    steps: list[str]
    tag: Optional[str] = None  # caller label used in error messages (e.g. "problem 12 node 7")


@dataclass
class ScoreResult:
    scores: list[float]
    prompt_tokens: int  # tokens the PRM read for this path (ledger role "prm" or "judge")
    cached_tokens: int = 0
    generated_tokens: int = 0
    head_rows: Optional[int] = None  # output-head rows computed for this path (None: one per score)


@runtime_checkable
class PRM(Protocol):
    name: str
    role: str  # "prm" or "judge" (ledger role)
    flop_spec: FlopSpec

    def score(self, requests: list[ScoreRequest]) -> list[ScoreResult]:
        """One ScoreResult per request, each with exactly len(request.steps) finite scores."""
        ...


def step_tag_text(question: str, steps: list[str], tag: str) -> str:
    """The Math-Shepherd input layout shared by `step_tag` and `mean_logit` (and by the demo PRM's
    training data): "{question} {step 1}{tag}\\n{step 2}{tag}\\n...{step k}{tag}". A score is read
    at each tag token's position."""
    return question.strip() + " " + "\n".join(s.strip() + tag for s in steps)


def score_checked(prm: PRM, requests: list[ScoreRequest]) -> list[ScoreResult]:
    """`prm.score` with the protocol enforced for every strategy alike: one result per request and
    exactly one finite score per step, else a PRMError naming the request's tag (e.g. the node)."""
    if not requests:
        return []
    results = prm.score(requests)
    if len(results) != len(requests):
        raise PRMError(
            f"PRM {prm.name} returned {len(results)} results for {len(requests)} paths "
            f"({requests[0].tag or 'request 0'} ...)"
        )
    for i, (req, res) in enumerate(zip(requests, results)):
        tag = req.tag or f"request {i}"
        if len(res.scores) != len(req.steps):
            raise PRMError(f"{tag}: PRM {prm.name} gave {len(res.scores)} scores for {len(req.steps)} steps")
        bad = [k for k, x in enumerate(res.scores) if not math.isfinite(float(x))]
        if bad:
            raise PRMError(
                f"{tag}: PRM {prm.name} gave a non-finite score ({res.scores[bad[0]]}) for step "
                f"{bad[0] + 1} of {len(req.steps)}"
            )
    return results


def book(ledger: Any, prm: PRM, res: ScoreResult) -> None:
    """Record one scored path in a FLOP ledger: the tokens read and the head rows computed."""
    rows = res.head_rows if res.head_rows is not None else len(res.scores)
    ledger.add(
        prm.name, prm.flop_spec, prm.role, res.prompt_tokens, res.cached_tokens, res.generated_tokens, logit_rows=rows
    )
