"""The PRM protocol: score every step of many solution paths, exactly one score per step.

    prm.score([ScoreRequest(question, steps), ...]) -> [[s_1, ..., s_k], ...]

A PRM call scores a whole round (every new node of every problem in a batch) in ONE call; one
forward pass scores all steps of a path. `score` raises rebase.errors.PRMError (naming the path)
when a model yields no score, NaN, or a count different from the number of steps: never a silently
shorter list. Each PRM also reports the tokens it read, so the ledger can price them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Protocol, runtime_checkable

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
