"""Incremental PRM scoring (reward_models/kv_reuse.py): for every transformers PRM family, a child
scored on its parent's cached KV gets the scores of a full re-reading (within 1e-4), and only its
new tokens run (the rest are booked as cached).

    OMP_NUM_THREADS=1 .venv/bin/pytest -x -q tests/test_prm_kv_reuse.py
"""

from __future__ import annotations

import pytest
import torch

from rebase.backends.hf_cache import BLOCK, PrefixKVCache
from reward_models.base import ScoreRequest
from test_prm import FAMILIES, make

QUESTIONS = ["What is 2 + 3?", "Start with 17. " * 6 + "What is the result?", "Tiny?"]
STEPS = ["Start with 2.", "Add 3 to get 5.", "Multiply by 4 to get 20.", "The answer is 20.", "Done."]


def tree_rounds(depth: int = 4) -> list[list[ScoreRequest]]:
    """Round d: every question's paths of d steps, two siblings per parent, the next round
    extending sibling 0 (as REBASE sends them)."""
    rounds, chosen = [], []
    for d in range(depth):
        rounds.append(
            [
                ScoreRequest(q, chosen + [f"{STEPS[d]} (variant {sib})"], tag=f"problem {qi} depth {d + 1} child {sib}")
                for qi, q in enumerate(QUESTIONS)
                for sib in range(2)
            ]
        )
        chosen = chosen + [f"{STEPS[d]} (variant 0)"]
    return rounds


@pytest.fixture(scope="module")
def pairs(tiny_dir):
    return {f: (make(tiny_dir, f), make(tiny_dir, f, kv_reuse=False)) for f in FAMILIES}


@pytest.mark.parametrize("family", list(FAMILIES))
def test_incremental_scores_equal_full_rereading(pairs, family):
    inc, full = pairs[family]
    assert inc.scorer is not None, "the causality check must pass on a decoder-only model"
    assert full.scorer is None
    inc.scorer.store.clear()
    rounds = tree_rounds()
    for d, reqs in enumerate(rounds):
        a, b = inc.score(reqs), full.score(reqs)
        for x, y, q in zip(a, b, reqs):
            assert len(x.scores) == len(q.steps)
            assert x.scores == pytest.approx(y.scores, abs=1e-4), q.tag
            assert x.prompt_tokens == y.prompt_tokens and y.cached_tokens == 0
            if d > 0:  # a child: the parent's path is read from cache, only the new step runs
                assert x.cached_tokens > 0
                assert x.prompt_tokens - x.cached_tokens < y.prompt_tokens / 2 + 8, q.tag
    # the whole tree cost far fewer PRM tokens than re-reading
    assert inc.scorer.store.hits > 0


@pytest.mark.parametrize("family", ["step_tag", "token_classify"])
def test_a_path_read_before_costs_nothing_and_scores_the_same(pairs, family):
    inc, _ = pairs[family]
    req = [ScoreRequest("What is 9 * 9?", ["9 * 9 = 81.", "The answer is 81."], tag="p")]
    first = inc.score(req)[0]
    again = inc.score(req)[0]
    assert again.scores == first.scores
    assert again.cached_tokens == again.prompt_tokens == first.prompt_tokens


def test_step_tag_child_runs_exactly_its_new_tokens(pairs):
    inc, _ = pairs["step_tag"]
    inc.scorer.store.clear()
    parent = ScoreRequest("What is 4 + 4?", ["Start with 4."], tag="parent")
    child = ScoreRequest("What is 4 + 4?", ["Start with 4.", "Add 4 to get 8."], tag="child")
    p = inc.score([parent])[0]
    c = inc.score([child])[0]
    assert p.cached_tokens == 0
    n_parent = len(inc.encode(parent.question, parent.steps))
    n_child = len(inc.encode(child.question, child.steps))
    assert c.cached_tokens == n_parent and c.prompt_tokens == n_child


def test_judge_reuses_the_shared_prefix_of_the_previous_step_prompt(pairs):
    inc, full = pairs["judge"]
    inc.scorer.store.clear()
    q = "Start with 17. " * 4 + "What is the result?"
    steps = ["Start with 17.", "Add 17 to get 34.", "Add 17 to get 51.", "Add 17 to get 68."]
    for k in range(1, len(steps) + 1):
        got = inc.score([ScoreRequest(q, steps[:k], tag=f"depth {k}")])[0]
        ref = full.score([ScoreRequest(q, steps[:k], tag=f"depth {k}")])[0]
        assert got.scores == pytest.approx(ref.scores, abs=1e-4)
        if k > 1:  # the old steps' prompts are free and the new one shares most of its prefix
            new_prompt = len(inc.tok(inc.prompt(q, steps[:k], k - 1))["input_ids"])
            assert got.prompt_tokens - got.cached_tokens < new_prompt / 2


def test_a_tiny_store_evicts_and_stays_exact(tiny_dir, pairs):
    _, full = pairs["step_tag"]
    c = full.model.config
    per_token = 2 * c.num_hidden_layers * c.num_key_value_heads * (c.hidden_size // c.num_attention_heads) * 4
    cap = 150 * per_token  # about two paths' KV
    tiny = make(tiny_dir, "step_tag", kv_cache_bytes=cap)
    rounds = tree_rounds(3)
    for reqs in rounds:
        for x, y in zip(tiny.score(reqs), full.score(reqs)):
            assert x.scores == pytest.approx(y.scores, abs=1e-4)
    assert 0 < tiny.scorer.store.nbytes <= cap and tiny.scorer.store.evictions > 0


def test_longest_shared_finds_partial_matches():
    cache = PrefixKVCache(1 << 20)
    kv = lambda n: [torch.zeros(1, n, 2)]  # noqa: E731
    a = list(range(100, 100 + 3 * BLOCK))
    cache.insert(a, kv(len(a)), kv(len(a)), payload={5: 0.5})
    assert cache.longest_shared([1, 2, 3]) == (None, 0)
    probe = a[: 2 * BLOCK + 3] + [7, 8, 9]  # diverges inside the third block
    entry, n = cache.longest_shared(probe)
    assert entry.ids == tuple(a) and n == 2 * BLOCK + 3 and entry.payload == {5: 0.5}
    entry, n = cache.longest_shared(a + [1])  # a whole entry that is a prefix
    assert n == len(a)
    short = [100, 101, 102]
    cache.insert(short, kv(3), kv(3))
    entry, n = cache.longest_shared([100, 101, 102, 5])
    assert n == 3
    entry, n = cache.longest_shared([100, 101, 55])  # shorter than a block, no whole entry
    assert (entry, n) == (None, 0)
