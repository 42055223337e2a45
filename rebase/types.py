"""Core data types shared by datasets, backends, PRMs, strategies and the evaluator.

- `Problem`: one benchmark item (stable id, question, gold answer, optional level/subject).
- `GenerationRequest` / `Completion`: the Generator protocol's input and output (see
  rebase/generator.py); token counts are always real numbers, never 0/-1 placeholders.
- `Node`: one step of a search tree; `Candidate`: a finished (or truncated) solution path with its
  per-step PRM scores; `SearchResult`: what a strategy returns for one problem.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any, Literal, Optional, get_args

# How a path's step scores become one number (for voting and for a node's reward); defined once here.
Reduction = Literal["last", "min", "prod", "mean"]
REDUCTIONS: tuple[str, ...] = get_args(Reduction)

FinishReason = Literal["stop", "eos", "length"]


@dataclass
class Problem:
    id: str
    question: str
    gold: str
    dataset: str
    level: Optional[int] = None
    subject: Optional[str] = None


@dataclass
class GenerationRequest:
    """One prompt to continue, `n` times.

    prompt: the full text so far (after any chat template); used when `prompt_token_ids` is None.
    prompt_token_ids: the exact token ids so far; tree search passes these so a child continues from
      precisely the tokens its parent generated (no re-tokenisation drift, exact KV-prefix reuse).
    n: number of independent samples.
    temperature: 0 means greedy (argmax).
    top_p: nucleus mass (1.0 = off).
    max_tokens: cap on new tokens for this call.
    stop: stop strings; a match ends the sample, and the stop string and all after it are removed
      from `text` (vLLM semantics), with finish_reason "stop" and stop_reason set to it.
    seed: per-request seed; the same (prompt, seed) gives the same samples whatever the batch.
    """

    prompt: str = ""
    prompt_token_ids: Optional[list[int]] = None
    n: int = 1
    temperature: float = 1.0
    top_p: float = 1.0
    max_tokens: int = 256
    stop: tuple[str, ...] = ()
    seed: Optional[int] = None

    def __post_init__(self) -> None:
        if self.n < 1:
            raise ValueError(f"n must be >= 1, got {self.n}")
        if self.max_tokens < 1:
            raise ValueError(f"max_tokens must be >= 1, got {self.max_tokens}")
        if self.temperature < 0:
            raise ValueError(f"temperature must be >= 0, got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")
        self.stop = tuple(self.stop)


@dataclass
class Completion:
    """One sample. token_ids are ALL generated ids, including the one that completed a stop string,
    so `prompt_token_ids + token_ids` is exactly the sequence the model saw (text is cut, ids are not).
    prompt_tokens: prompt length; cached_tokens: how many of those were served from a KV cache;
    generated_tokens: len(token_ids)."""

    text: str
    token_ids: list[int]
    finish_reason: FinishReason
    prompt_tokens: int
    cached_tokens: int
    generated_tokens: int
    stop_reason: Optional[str] = None


@dataclass
class Node:
    """One node of a search tree: the root (depth 0, the prompt) or one generated step."""

    id: int
    parent: Optional[int]
    depth: int
    text: str = ""
    token_ids: list[int] = field(default_factory=list)
    step_scores: list[float] = field(default_factory=list)  # PRM scores of every step on the path
    reward: Optional[float] = None  # R(node), the reduction of step_scores used for allocation
    finish_reason: Optional[str] = None
    finished: bool = False
    truncated: bool = False
    allocation: int = 0  # children granted at expansion (REBASE W_j; MCTS expansions)
    visits: int = 0  # MCTS
    value: float = 0.0  # MCTS running-mean Q
    path_tokens: int = 0  # generated tokens on the path root..this node (the cumulative cap)

    def to_json(self) -> dict[str, Any]:
        # what asdict gives, without its recursive deepcopy of every float and id (the fields hold
        # only scalars and flat lists): asdict was ~5% of a small model's sweep
        return {f.name: (list(v) if isinstance(v := getattr(self, f.name), list) else v) for f in _NODE_FIELDS}


_NODE_FIELDS = fields(Node)


@dataclass
class Candidate:
    """A complete solution path. `answer` is None when it is invalid (nothing extractable);
    invalid answers never win a vote. `truncated` solutions hit a token or depth cap."""

    steps: list[str]
    answer: Optional[str]
    step_scores: Optional[list[float]] = None
    finished: bool = True
    truncated: bool = False
    node_id: Optional[int] = None
    generated_tokens: int = 0

    @property
    def text(self) -> str:
        return "\n".join(self.steps)


@dataclass
class SearchResult:
    """What a strategy returns for one problem: candidates, the tree (if any), the cost ledger,
    and `error` set (with candidates possibly empty) when the problem failed."""

    problem_id: str
    candidates: list[Candidate]
    ledger: Any  # rebase.flops.Ledger
    nodes: list[Node] = field(default_factory=list)
    error: Optional[str] = None
    info: dict[str, Any] = field(default_factory=dict)
