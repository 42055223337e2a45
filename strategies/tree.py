"""Search-tree machinery shared by the tree strategies (REBASE, MCTS, beam search).

Why: every tree strategy grows one tree per problem and must send a whole round, for every
problem of the batch, to the policy in ONE `generate` call and to the PRM in ONE `score` call.
This module owns that batching, the node bookkeeping (token caps, depth cap, finish detection),
the per-problem FLOP ledger and the conversion of leaves into Candidates, so a strategy only
decides *which* nodes to expand and *how many* children each gets.

    trees = new_trees(problems, ctx)                       # root = rendered prompt + its ids
    groups = expand([(tree, tree.root, 4), ...], ctx, rnd) # one generate call
    score([(tree, child) for tree, kids in groups for child in kids], ctx, "last")  # one PRM call
    result = tree.result(tree.candidates(ctx), info={"rounds": rnd})

Node states: `finished` = the solution ended naturally (the step gives the answer per
PromptFormat.is_final, or the model emitted EOS); `truncated` = cut by a cap (the cumulative
`max_tokens`, or `max_depth`) without an answer. The two are exclusive; a node with either flag is
`terminal`: it leaves the frontier and is never expanded. A step cut by `max_step_tokens` while the
solution still has token budget is an ordinary (partial) step and the next step continues it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

from rebase.errors import RunFailure
from rebase.tasks.grading import extract_answer
from rebase.flops import Ledger
from rebase.types import Candidate, GenerationRequest, Node, Problem, SearchResult
from reward_models.base import ScoreRequest, book, score_checked
from strategies.aggregators import reduce_scores
from strategies.base import SearchContext, request_seed


def terminal(node: Node) -> bool:
    """Whether a node has left the frontier (finished naturally or cut by a cap)."""
    return node.finished or node.truncated


@dataclass
class Tree:
    """One problem's search tree: `nodes[0]` is the root (depth 0) holding the rendered prompt as
    text and its token ids; node ids are list indices."""

    problem: Problem
    nodes: list[Node]
    ledger: Ledger = field(default_factory=Ledger)
    children: dict[int, list[int]] = field(default_factory=dict)

    @property
    def root(self) -> Node:
        return self.nodes[0]

    def parent(self, node: Node) -> Optional[Node]:
        return None if node.parent is None else self.nodes[node.parent]

    def kids(self, node: Node) -> list[Node]:
        return [self.nodes[i] for i in self.children.get(node.id, [])]

    def path(self, node: Node) -> list[Node]:
        """Nodes from the root's first child down to `node` (the root itself excluded)."""
        out = []
        while node.parent is not None:
            out.append(node)
            node = self.nodes[node.parent]
        return out[::-1]

    def steps(self, node: Node) -> list[str]:
        return [n.text for n in self.path(node)]

    def path_ids(self, node: Node) -> list[int]:
        """Prompt ids + every generated id on the path: exactly what the model saw, so a child
        continues from its parent's tokens with no re-tokenisation drift."""
        ids = list(self.root.token_ids)
        for n in self.path(node):
            ids.extend(n.token_ids)
        return ids

    def add_child(self, parent: Node, text: str, token_ids: list[int], finish_reason: str,
                  generated_tokens: int) -> Node:
        child = Node(id=len(self.nodes), parent=parent.id, depth=parent.depth + 1, text=text,
                     token_ids=list(token_ids), finish_reason=finish_reason,
                     path_tokens=parent.path_tokens + generated_tokens)
        self.nodes.append(child)
        self.children.setdefault(parent.id, []).append(child.id)
        return child

    def leaves(self) -> list[Node]:
        return [n for n in self.nodes[1:] if n.id not in self.children]

    def candidate(self, node: Node, ctx: SearchContext, truncated: Optional[bool] = None) -> Candidate:
        steps = self.steps(node)
        text = ctx.prompts.step_delimiter.join(steps)
        return Candidate(steps=steps, answer=extract_answer(text, ctx.dataset),
                         step_scores=list(node.step_scores), finished=node.finished,
                         truncated=node.truncated if truncated is None else truncated,
                         node_id=node.id, generated_tokens=node.path_tokens)

    def candidates(self, ctx: SearchContext) -> list[Candidate]:
        """Every terminal leaf (finished or truncated), in creation order."""
        return [self.candidate(n, ctx) for n in self.leaves() if terminal(n)]

    def result(self, candidates: list[Candidate], info: Optional[dict[str, Any]] = None) -> SearchResult:
        return SearchResult(problem_id=self.problem.id, candidates=candidates, ledger=self.ledger,
                            nodes=self.nodes, info=dict(info or {}))


def new_trees(problems: list[Problem], ctx: SearchContext) -> list[Tree]:
    """One tree per problem; the root holds the rendered prompt and generator.encode(prompt)."""
    trees = []
    for p in problems:
        prompt = ctx.prompts.render(p, ctx.generator)
        root = Node(id=0, parent=None, depth=0, text=prompt, token_ids=list(ctx.generator.encode(prompt)))
        trees.append(Tree(problem=p, nodes=[root]))
    return trees


def expand(items: list[tuple[Tree, Node, int]], ctx: SearchContext, rnd: int) -> list[tuple[Tree, list[Node]]]:
    """Sample `k` children of each (tree, node, k) in ONE generate call; return, per item, the
    tree and its new children. Each completion is recorded once in its problem's ledger."""
    s = ctx.sampling
    gen = ctx.generator
    requests = []
    for tree, node, k in items:
        if terminal(node):
            raise ValueError(f"problem {tree.problem.id} node {node.id}: a terminal node cannot be expanded")
        room = min(s.max_step_tokens, s.max_tokens - node.path_tokens)  # >= 1: else it was truncated
        requests.append(GenerationRequest(
            prompt_token_ids=tree.path_ids(node), n=k, temperature=s.temperature, top_p=s.top_p,
            max_tokens=room, stop=(ctx.prompts.step_delimiter,),
            seed=request_seed(ctx.seed, tree.problem.id, node.id, rnd)))
    if not requests:
        return []
    outs = gen.generate(requests)
    if len(outs) != len(requests):
        raise RunFailure(f"generator {gen.name} returned {len(outs)} results for {len(requests)} requests")
    groups = []
    for (tree, node, k), comps in zip(items, outs):
        if len(comps) != k:
            raise RunFailure(f"problem {tree.problem.id} node {node.id}: generator returned {len(comps)} "
                             f"completions, asked for {k}")
        kids = []
        for c in comps:
            tree.ledger.add(gen.name, gen.flop_spec, "policy", c.prompt_tokens, c.cached_tokens, c.generated_tokens)
            child = tree.add_child(node, c.text, c.token_ids, c.finish_reason, c.generated_tokens)
            child.finished = c.finish_reason == "eos" or ctx.prompts.is_final(c.text)
            child.truncated = not child.finished and (child.path_tokens >= s.max_tokens or child.depth >= s.max_depth)
            kids.append(child)
        groups.append((tree, kids))
    return groups


def score(items: list[tuple[Tree, Node]], ctx: SearchContext, reward: str = "last") -> None:
    """Score every (tree, node) path in ONE PRM call; set node.step_scores and node.reward
    (R(node) = reduction `reward` of the path's scores) and record the PRM tokens. A missing,
    extra or non-finite score raises PRMError naming the node: no child is silently dropped."""
    if not items:
        return
    prm = ctx.prm
    if prm is None:
        raise ValueError("tree search needs a PRM (ctx.prm is None)")
    tags = [f"problem {t.problem.id} node {n.id}" for t, n in items]
    reqs = [ScoreRequest(question=t.problem.question, steps=t.steps(n), tag=tag) for (t, n), tag in zip(items, tags)]
    for (tree, node), res in zip(items, score_checked(prm, reqs)):
        node.step_scores = [float(x) for x in res.scores]
        node.reward = reduce_scores(node.step_scores, reward)
        book(tree.ledger, prm, res)
