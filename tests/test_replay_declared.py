"""Replay asks the strategy, it does not guess from the file name: each strategy declares how its
saved tree turns back into candidates (Strategy.saved_candidates), and replay finds the strategy
from the tree file's stem (eval.plan.search_of, the inverse of Unit.label).

    python -m pytest -q tests/test_replay_declared.py
"""

from __future__ import annotations

import pytest

from eval.plan import POOL_SEARCH, Unit, search_of
from eval.replay import candidates_of
from rebase.registry import STRATEGIES
from rebase.types import Node
from strategies.base import Strategy
from strategies.mcts import MCTS
from strategies.sampling import Greedy, NSample
from fakes import make_ctx


def nodes():
    mk = dict(token_ids=[], reward=None, finish_reason="stop", allocation=0, visits=0, value=0.0)
    return [
        Node(
            id=0,
            parent=None,
            depth=0,
            text="prompt",
            step_scores=[],
            finished=False,
            truncated=False,
            path_tokens=0,
            **mk,
        ),
        Node(
            id=1,
            parent=0,
            depth=1,
            text="2 + 2 = 4\nThe answer is 4",
            step_scores=[0.5, 0.9],
            finished=True,
            truncated=False,
            path_tokens=6,
            **mk,
        ),
        Node(
            id=2,
            parent=0,
            depth=1,
            text="2 + 3 = 5",
            step_scores=[0.2],
            finished=False,
            truncated=False,
            path_tokens=4,
            **mk,
        ),
    ]


@pytest.mark.parametrize(
    "stem, name",
    [
        ("rebase-b4-s0", "rebase"),
        ("best_of_n-b16-s2", "best_of_n"),
        ("mcts-b8-s0-wide", "mcts"),
        ("pool-b16-s0", POOL_SEARCH),
        ("pool-b16-s1-t0.7-hot", POOL_SEARCH),
        ("my-search-b2-s0", "my-search"),
    ],
)
def test_search_of_inverts_unit_label(stem, name):
    assert search_of(stem) == name


def test_search_of_reads_every_label_the_planner_writes():
    for unit in (
        Unit("adaptive_majority", 32, 3, None),
        Unit("rebase", 4, 0, None, tag="b-4-s-1"),
        Unit(POOL_SEARCH, 64, 1, 0.7, pool=True),
    ):
        assert search_of(unit.label) == unit.strategy


def test_the_strategy_declares_the_rule():
    ctx = make_ctx(None, None, dataset="gsm8k")
    # samples: every node under the root is a whole solution, open ones included
    assert [c.answer for c in candidates_of("majority-b2-s0", nodes(), ctx)] == ["4", None]
    assert candidates_of("pool-b2-s0", nodes(), ctx) == NSample.saved_candidates(nodes(), ctx)
    # tree searches: terminal leaves only; MCTS adds its best open leaf when nothing finished
    assert [c.node_id for c in candidates_of("rebase-b2-s0", nodes(), ctx)] == [1]
    assert candidates_of("mcts-b2-s0", nodes(), ctx) == MCTS.saved_candidates(nodes(), ctx)

    @STRATEGIES.register("replay_probe")
    class Probe(Greedy):
        """A plugin-like strategy that forms candidates its own way."""

        name = "replay_probe"

        @classmethod
        def saved_candidates(cls, ns, c):
            return ["declared"]

    @STRATEGIES.register("replay_greedy_child")
    class Child(Greedy):
        """Inherits greedy's rule."""

        name = "replay_greedy_child"

    try:
        assert candidates_of("replay_probe-b1-s0", nodes(), ctx) == ["declared"]
        assert candidates_of("replay_greedy_child-b1-s0", nodes(), ctx) == NSample.saved_candidates(nodes(), ctx)
    finally:
        STRATEGIES.unregister("replay_probe")
        STRATEGIES.unregister("replay_greedy_child")
    # a search not registered here (its plugin not installed) gets the tree searches' rule
    assert candidates_of("gone_plugin-b2-s0", nodes(), ctx) == Strategy.saved_candidates(nodes(), ctx)
