"""REBASE's `token_cap` (strategies/rebase.py, strategies/tree.py): `path`, the default, makes
sampling.max_tokens a true cap on a path's tokens; `step` applies it the way the released code
(thu-wyz/inference_scaling) does, to each step's own tokens (docs/FIDELITY.md, "cumulative token cap").

What the two must show, on the fake policy and PRM:
- `step` with max_step_tokens < max_tokens never fires: its search is the one a path cap too large
  to bite gives (max_tokens = max_step_tokens x max_depth), node for node, while a path cap of the
  same max_tokens does cut paths there;
- `step` with max_step_tokens >= max_tokens truncates a node exactly when its own step reached
  max_tokens, and its requests always ask for max_step_tokens, whatever the path already holds;
- the setting is validated like every strategy option and is part of the resume fingerprint.

    OMP_NUM_THREADS=1 .venv/bin/python -m pytest -q tests/test_token_cap.py
"""

from __future__ import annotations

import pytest

from fakes import FakeGenerator, FakePRM, make_ctx, problems
from rebase.config import load_config
from rebase.errors import BadInput
from eval.fingerprint import first_difference, fingerprint
from strategies.rebase import Rebase

STEP, DEPTH = 8, 6  # max_step_tokens, max_depth


pytestmark = pytest.mark.usefixtures("fake_answers")


def search(token_cap: str, max_tokens: int, max_step_tokens: int = STEP):
    gen, prm = FakeGenerator(p_final=0.15, max_len=8), FakePRM(seed=3)
    ctx = make_ctx(gen, prm, seed=5, max_step_tokens=max_step_tokens, max_tokens=max_tokens, max_depth=DEPTH)
    return Rebase(token_cap=token_cap).search(problems(3), 12, ctx), gen


def as_json(results):
    return [([n.to_json() for n in r.nodes], [c.__dict__ for c in r.candidates], r.info) for r in results]


def test_the_released_cap_never_fires_below_max_step_tokens():
    released, _ = search("step", max_tokens=16)
    uncapped, _ = search("path", max_tokens=STEP * DEPTH)
    capped, _ = search("path", max_tokens=16)
    assert as_json(released) == as_json(uncapped)  # the same search, node for node and candidate for candidate
    nodes = [n for r in released for n in r.nodes[1:]]
    # paths run past max_tokens, and only the depth cap truncates them
    assert max(n.path_tokens for n in nodes) > 16
    assert all(n.depth == DEPTH for n in nodes if n.truncated)
    # the true cap of the same max_tokens cuts those paths: nothing longer, and a truncation below the depth cap
    capped_nodes = [n for r in capped for n in r.nodes[1:]]
    assert max(n.path_tokens for n in capped_nodes) <= 16
    assert any(n.truncated and n.depth < DEPTH and n.path_tokens == 16 for n in capped_nodes)
    assert as_json(capped) != as_json(released)


def test_the_released_cap_compares_each_step_alone():
    results, gen = search("step", max_tokens=6, max_step_tokens=STEP)
    for r in results:
        for n in r.nodes[1:]:
            own = n.path_tokens - r.nodes[n.parent].path_tokens
            assert n.truncated == (not n.finished and (own >= 6 or n.depth >= DEPTH)), n
        assert any(n.path_tokens > 6 for n in r.nodes)  # a path of short steps goes on past max_tokens
    # every request asks for a whole step, as the released gen(max_step_tokens) does
    assert {q.max_tokens for call in gen.requests for q in call} == {STEP}
    _, path_gen = search("path", max_tokens=6, max_step_tokens=STEP)
    assert {q.max_tokens for call in path_gen.requests for q in call} != {STEP}  # the true cap asks for what is left


BASE = {
    "models": [{"name": "m", "path": "some/model"}],
    "prm": {"family": "step_tag", "path": "some/prm", "tag": " ки", "good": "+", "bad": "-"},
    "dataset": {"name": "gsm8k", "limit": 5},
    "strategies": [{"name": "rebase", "budgets": [4]}],
}


def cfg(**options):
    raw = {**BASE, "strategies": [{"name": "rebase", "budgets": [4], **options}]}
    return load_config(None, raw=raw)


def test_the_setting_is_validated_and_fingerprinted():
    with pytest.raises(BadInput, match=r"strategies\.0: token_cap: Input should be 'path' or 'step'"):
        cfg(token_cap="cumulative")
    assert first_difference(fingerprint(cfg()), fingerprint(cfg(token_cap="path"))) is None  # the default, spelt out
    assert first_difference(fingerprint(cfg()), fingerprint(cfg(token_cap="step"))) == "strategies.rebase.token_cap"
