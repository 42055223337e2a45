"""One rule for empty steps in every strategy (docs/FIDELITY.md, "Empty steps").

A completion that is only whitespace (the delimiter, a blank line) is not a step. Sampling's step
splitting drops such pieces; tree search keeps the node (its tokens were generated and priced) but
adds no step to its path, does not send it to the PRM, and gives it its parent's scores. So the PRM
reads the same steps for the same text whatever the strategy.

    OMP_NUM_THREADS=1 .venv/bin/pytest -q tests/test_empty_steps.py
"""

from __future__ import annotations

from fakes import DELIM_ID, FakeGenerator, FakePRM, make_ctx, problems

from rebase.registry import STRATEGIES
from rebase.types import Completion


def blank_every_third(req, i, rng):
    """Steps "s<k>", every third one blank; a final answer now and then."""
    k = rng.randrange(10**6)
    text = " \n" if k % 3 == 0 else ("The answer is 3." if k % 5 == 0 else f"s{k}")
    return Completion(
        text=text,
        token_ids=[100, DELIM_ID],
        finish_reason="stop",
        prompt_tokens=len(req.prompt_token_ids or []),
        cached_tokens=0,
        generated_tokens=2,
        stop_reason="\n",
    )


def test_tree_search_never_sends_an_empty_step_and_copies_the_parent_scores():
    prm = FakePRM()
    ctx = make_ctx(FakeGenerator(script=blank_every_third), prm, max_depth=6)
    res = STRATEGIES.get("rebase")().search(problems(2), 6, ctx)
    sent = [r for call in prm.requests for r in call]
    assert sent and all(s.strip() for r in sent for s in r.steps)
    blanks = [n for r in res for n in r.nodes if n.parent is not None and not n.text.strip()]
    assert blanks, "the script must produce blank children"
    for r in res:
        by_id = {n.id: n for n in r.nodes}
        for n in r.nodes:
            if n.parent is not None and not n.text.strip():
                assert n.step_scores == by_id[n.parent].step_scores
    for r in res:
        for c in r.candidates:
            assert all(s.strip() for s in c.steps) and len(c.step_scores) == len(c.steps)


def test_same_text_same_prm_steps_in_sampling_and_tree_search():
    from rebase.tasks.prompts import PromptFormat

    fmt = PromptFormat.from_config("gsm8k")
    text = fmt.step_delimiter.join(["Start with 2.", " ", "Add 3.", "", "The answer is 5."])
    sampled = fmt.split_steps(text)

    from rebase.types import Node
    from strategies.tree import Tree

    tree = Tree(problem=problems(1)[0], nodes=[Node(id=0, parent=None, depth=0, text="prompt")])
    parent = tree.root
    for i, step in enumerate(text.split(fmt.step_delimiter)):
        node = Node(id=i + 1, parent=parent.id, depth=parent.depth + 1, text=step)
        tree.nodes.append(node)
        parent = node
    assert tree.steps(parent) == sampled == ["Start with 2.", "Add 3.", "The answer is 5."]
