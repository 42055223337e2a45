"""Instrumented fakes for strategy tests: a Generator and a PRM that count their calls.

Why: search strategies must batch a whole round into ONE generate call and ONE score call, honour
token caps and record every token once. These fakes make that checkable without a model: they are
deterministic (every sample is a function of the request seed and its index, every score a
function of the step text and the PRM seed), log every call, and can be tuned to finish, hit EOS
or run into the length cap with given probabilities.

    gen = FakeGenerator(p_final=0.3, p_eos=0.05, p_length=0.1)
    prm = FakePRM(seed=1)
    ctx = make_ctx(gen, prm, max_tokens=64, max_depth=6)
    ... strategy.search(problems, budget, ctx) ...
    assert gen.calls == prm.calls == rounds

`fake_extract_answer` reads "The answer is X" (conftest's `fake_answers` fixture puts it in
strategies.tree). Worked trees: `NamedSteps(write)` scripts a FakeGenerator whose every step is one
named token plus the delimiter; `check_tree_basics(res, ctx)` holds the checks every tree strategy's
result must pass.
"""

from __future__ import annotations

import hashlib
import random
import re
from typing import Callable, Optional

from rebase.config import SamplingConfig
from rebase.errors import PRMError
from rebase.flops import FlopSpec
from rebase.types import Completion, GenerationRequest, Problem
from reward_models.base import ScoreRequest, ScoreResult

SPEC = FlopSpec(n_params=1000, n_nonembed=800, n_layer=2, d_attn=16, d_model=16, vocab=50)
EOS_ID = 2
DELIM_ID = 10


def fake_extract_answer(text: str, dataset: str) -> Optional[str]:
    found = re.findall(r"The answer is (-?\d+)", text)
    return found[-1] if found else None


class FakeGenerator:
    """Each sample draws its length (1..max_len tokens) and its fate from Random(seed, index):
    with p_eos it ends on EOS, with p_length it runs into max_tokens, otherwise it ends on the stop
    string; with p_final a stopped step says "The answer is A" (A drawn from `answers`).
    `script(request, index, rng)` may replace this and return a Completion itself."""

    def __init__(
        self,
        p_final: float = 0.3,
        p_eos: float = 0.0,
        p_length: float = 0.0,
        max_len: int = 8,
        answers: tuple[str, ...] = ("1", "2", "3"),
        cached: bool = False,
        script: Optional[Callable[[GenerationRequest, int, random.Random], Completion]] = None,
    ):
        self.name = "fake-policy"
        self.flop_spec = SPEC
        self.p_final, self.p_eos, self.p_length = p_final, p_eos, p_length
        self.max_len, self.answers, self.cached, self.script = max_len, answers, cached, script
        self.calls = 0
        self.requests: list[list[GenerationRequest]] = []  # one list per generate call

    def encode(self, text: str) -> list[int]:
        return [100 + (ord(ch) % 50) for ch in text]

    def render_chat(self, user: str, system: Optional[str] = None) -> Optional[str]:
        return None

    def close(self) -> None:
        pass

    def _sample(self, req: GenerationRequest, i: int) -> Completion:
        rng = random.Random(f"{req.seed}:{i}")
        if self.script is not None:
            return self.script(req, i, rng)
        prompt = len(req.prompt_token_ids if req.prompt_token_ids is not None else self.encode(req.prompt or ""))
        cached = prompt - 1 if self.cached and prompt else 0
        u = rng.random()
        length = rng.randint(1, self.max_len)
        tag = rng.randrange(10**6)
        if u < self.p_eos:
            n, reason, text, stop = min(length, req.max_tokens), "eos", f"s{tag}", None
        elif u < self.p_eos + self.p_length or length > req.max_tokens:
            n, reason, text, stop = req.max_tokens, "length", f"s{tag}", None
        else:
            n, reason, stop = length, "stop", "\n"
            text = f"The answer is {rng.choice(self.answers)}." if rng.random() < self.p_final else f"s{tag}"
        ids = [100 + rng.randrange(50) for _ in range(n)]
        ids[-1] = EOS_ID if reason == "eos" else DELIM_ID if reason == "stop" else ids[-1]
        return Completion(
            text=text,
            token_ids=ids,
            finish_reason=reason,
            prompt_tokens=prompt,
            cached_tokens=cached,
            generated_tokens=n,
            stop_reason=stop,
        )

    def generate(self, requests: list[GenerationRequest]) -> list[list[Completion]]:
        self.calls += 1
        self.requests.append(list(requests))
        for r in requests:
            # tree search sends token ids; whole-solution sampling sends the prompt text
            assert (r.prompt_token_ids is not None or r.prompt) and r.max_tokens >= 1
        return [[self._sample(r, i) for i in range(r.n)] for r in requests]


class FakePRM:
    """Scores each step by a hash of (seed, question, step index, step text) in [0, 1).
    `fail_tag`: raise PRMError for the request with that tag; `short_tag`: return one score too
    few for it (a broken adapter), to check that strategies refuse to drop a child silently.
    `fixed`: step text -> score, for tests that need known rewards. `break_first`: the first
    request of the first call gets one score too few ("short"), a NaN score ("nan"), or no result
    at all ("drop"), to check that every strategy refuses what a broken adapter returns."""

    def __init__(
        self,
        seed: int = 0,
        role: str = "prm",
        fail_tag: Optional[str] = None,
        short_tag: Optional[str] = None,
        fixed: Optional[dict[str, float]] = None,
        break_first: Optional[str] = None,
    ):
        self.name = "fake-prm"
        self.role = role
        self.flop_spec = SPEC
        self.seed, self.fail_tag, self.short_tag = seed, fail_tag, short_tag
        self.fixed = dict(fixed or {})
        self.break_first = break_first
        self.calls = 0
        self.requests: list[list[ScoreRequest]] = []

    def step_score(self, question: str, i: int, step: str) -> float:
        if step in self.fixed:
            return self.fixed[step]
        h = hashlib.blake2b(f"{self.seed}|{question}|{i}|{step}".encode(), digest_size=8).digest()
        return int.from_bytes(h, "little") / 2**64

    def score(self, requests: list[ScoreRequest]) -> list[ScoreResult]:
        self.calls += 1
        self.requests.append(list(requests))
        out = []
        for r in requests:
            if r.tag == self.fail_tag:
                raise PRMError(f"{r.tag}: no score")
            scores = [self.step_score(r.question, i, s) for i, s in enumerate(r.steps)]
            if r.tag == self.short_tag:
                scores = scores[:-1]
            tokens = len(r.question) + sum(len(s) + 1 for s in r.steps)
            out.append(ScoreResult(scores=scores, prompt_tokens=tokens))
        if self.break_first and self.calls == 1 and out:
            if self.break_first == "drop":
                return out[1:]
            out[0].scores = out[0].scores[:-1] if self.break_first == "short" else [float("nan")] + out[0].scores[1:]
        return out


def step_completion(req: GenerationRequest, text: str, tok: int) -> Completion:
    """A whole step of two tokens (`tok`, then the delimiter) that stopped on the delimiter."""
    return Completion(
        text=text,
        token_ids=[tok, DELIM_ID],
        finish_reason="stop",
        prompt_tokens=len(req.prompt_token_ids),
        cached_tokens=0,
        generated_tokens=2,
    )


class NamedSteps:
    """A FakeGenerator script for worked trees: `write(req, i, depth)` gives the text of sample i of
    a request whose path has `depth` steps; each step's token names it, so `parent(req)` is the text
    of the step the request continues."""

    def __init__(self, write: Callable[[GenerationRequest, int, int], str]):
        self.write = write
        self.names: dict[int, str] = {}

    def parent(self, req: GenerationRequest) -> str:
        return self.names[req.prompt_token_ids[-2]]

    def __call__(self, req: GenerationRequest, i: int, rng: random.Random) -> Completion:
        text = self.write(req, i, sum(1 for t in req.prompt_token_ids if t == DELIM_ID))
        tok = 1000 + len(self.names)
        self.names[tok] = text
        return step_completion(req, text, tok)


def check_tree_basics(res, ctx) -> dict[int, list]:
    """What every tree search's result must hold: nodes within the depth and token caps with one
    score per step, the candidates exactly the terminal leaves in creation order, every generated
    token in the ledger once and one PRM entry per scored node. Returns parent id -> children."""
    nodes = res.nodes
    kids: dict[int, list] = {}
    for n in nodes[1:]:
        kids.setdefault(n.parent, []).append(n)
        assert n.depth <= ctx.sampling.max_depth and n.path_tokens <= ctx.sampling.max_tokens
        assert len(n.step_scores) == n.depth
    terminal_leaves = [n.id for n in nodes[1:] if n.id not in kids and (n.finished or n.truncated)]
    assert [c.node_id for c in res.candidates] == terminal_leaves
    led = res.ledger
    assert led.tokens("policy", "generated_tokens") == sum(len(n.token_ids) for n in nodes[1:])
    assert sum(e.role == "prm" for e in led.entries) == len(nodes) - 1
    return kids


def problems(k: int, dataset: str = "gsm8k") -> list[Problem]:
    return [Problem(id=f"p{i}", question=f"What is {i} + {i}?", gold=str(2 * i), dataset=dataset) for i in range(k)]


def make_ctx(gen, prm, dataset: str = "gsm8k", seed: int = 0, **sampling):
    """A SearchContext over the fakes with the dataset's default prompt format."""
    from rebase.tasks.prompts import PromptFormat
    from strategies.base import SearchContext

    return SearchContext(
        generator=gen,
        prm=prm,
        prompts=PromptFormat.from_config(dataset),
        sampling=SamplingConfig(**sampling),
        seed=seed,
        dataset=dataset,
    )
