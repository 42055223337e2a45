"""Continuous batching in the transformers backend (rebase/backends/hf_stream.py): with more
requests queued than the running batch holds, finished rows' slots go to waiting requests mid-
decode, and every request gets the same tokens as when generated alone; `refill` adds requests to
a running decode with the same result as a later generate call.

    OMP_NUM_THREADS=1 .venv/bin/pytest -x -q tests/test_continuous_batching.py
"""

from __future__ import annotations

import pytest

from rebase.backends.hf_stream import LiveBatch
from rebase.types import GenerationRequest as Req
from test_backend_hf import PROMPTS, build_sampler_model, ids_of, make


@pytest.fixture(scope="module")
def llama(tiny_dir, tmp_path_factory):
    return build_sampler_model(tmp_path_factory.mktemp("cb") / "llama", tiny_dir / "tok", "llama", seed=0)


def requests() -> list[Req]:
    """Stops after a few tokens for some rows, long caps for others: rows finish at different steps."""
    out = []
    for i in range(8):
        out.append(
            Req(
                prompt=PROMPTS[i % 3] + " " * (i % 2),
                n=1 + i % 3,
                temperature=1.0 if i % 4 else 0.0,
                max_tokens=4 + 5 * (i % 3),
                stop=(" the",) if i % 2 else (),
                seed=100 + i,
            )
        )
    return out


@pytest.mark.parametrize("budget", [120, 400])
def test_queued_requests_join_a_running_batch_with_identical_tokens(llama, budget, monkeypatch):
    reqs = requests()
    alone = [make(llama, prefix_reuse=False).generate([r])[0] for r in reqs]
    joined_mid_decode = []
    real_admit = LiveBatch.admit

    def admit(self, groups):
        joined_mid_decode.append(len(self.rows) > 0)
        return real_admit(self, groups)

    monkeypatch.setattr(LiveBatch, "admit", admit)
    outs = make(llama, prefix_reuse=False, batch_tokens=budget).generate(reqs)
    assert ids_of(outs) == [[c.token_ids for c in o] for o in alone]
    assert [[c.text for c in o] for o in outs] == [[c.text for c in o] for o in alone]
    assert [[c.finish_reason for c in o] for o in outs] == [[c.finish_reason for c in o] for o in alone]
    assert any(joined_mid_decode), "some request must take a finished row's slot while others decode"


def test_refill_adds_requests_to_the_running_decode(llama):
    g = make(llama, batch_tokens=400)
    first = [
        Req(prompt=PROMPTS[0], n=2, temperature=1.0, max_tokens=3, seed=1),
        Req(prompt=PROMPTS[2], n=2, temperature=1.0, max_tokens=12, seed=2),
    ]
    children: dict[int, Req] = {}

    def refill(done):
        new = []
        for i, comps in done:
            if i < len(first):  # one child per finished first-level request, as a search round
                base = g.encode(first[i].prompt) + comps[0].token_ids
                children[i] = Req(prompt_token_ids=base, n=2, temperature=1.0, max_tokens=5, seed=10 + i)
                new.append(children[i])
        return new

    outs = g.generate(first, refill=refill)
    assert len(outs) == 4 and sorted(children) == [0, 1]
    order = list(children)  # the order refill added them
    ref = make(llama, prefix_reuse=False)
    assert ids_of(outs[:2]) == ids_of(ref.generate(first))
    assert ids_of(outs[2:]) == ids_of(ref.generate([children[i] for i in order]))
    # the short request finished first: its child was decoding while the long one still ran
    assert order[0] == 0
    assert all(c.cached_tokens > 0 for c in outs[2])  # children reuse their parent's KV
