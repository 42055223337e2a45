"""Pipelined REBASE (strategies/rebase.py `pipeline`) on the real transformers backend and a real
step_tag PRM: the same trees as lock-step rounds for a given seed (texts, token ids, scores,
allocations), in ONE generate call, with problems starting rounds at different times.

    OMP_NUM_THREADS=1 .venv/bin/pytest -x -q tests/test_rebase_pipeline.py
"""

from __future__ import annotations

import json

import pytest

from rebase.config import PRMConfig, SamplingConfig
from rebase.model_config import TransformersModel
from strategies.base import SearchContext
from strategies.rebase import Rebase
from test_backend_hf import build_sampler_model


class Counting:
    """Forwards to a generator, counting generate calls and whether refill was used."""

    def __init__(self, inner):
        self.inner, self.calls, self.refills = inner, 0, 0

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def generate(self, requests, refill=None):
        self.calls += 1
        if refill is None:
            return self.inner.generate(requests)

        def counted(done):
            self.refills += 1
            return refill(done)

        return self.inner.generate(requests, refill=counted)


@pytest.fixture(scope="module")
def world(tiny_dir, data_dir, tmp_path_factory):
    from rebase.tasks.prompts import PromptFormat
    from rebase.backends.hf import TransformersGenerator
    from reward_models.step_tag import StepTagPRM

    path = build_sampler_model(tmp_path_factory.mktemp("pipe") / "llama", tiny_dir / "tok", "llama", seed=3)
    gen = TransformersGenerator(TransformersModel(name="policy", path=str(path), device="cpu"))
    prm = StepTagPRM(PRMConfig(family="step_tag", path=str(tiny_dir / "prm_llama"), tag=" ки", good="+", bad="-"))
    rows = [json.loads(x) for x in (data_dir / "gsm8k" / "test.jsonl").read_text().splitlines()[:4]]
    from rebase.types import Problem

    problems = [Problem(id=str(i), question=r["question"], gold="0", dataset="gsm8k") for i, r in enumerate(rows)]
    return gen, prm, PromptFormat.from_config("gsm8k"), problems


def run(world, pipeline: bool, batch_tokens: int):
    gen, prm, prompts, problems = world
    gen.cfg = gen.cfg.model_copy(update={"batch_tokens": batch_tokens})
    gen.prefix_cache.clear()
    counting = Counting(gen)
    ctx = SearchContext(
        generator=counting,
        prm=prm,
        prompts=prompts,
        dataset="gsm8k",
        seed=5,
        sampling=SamplingConfig(temperature=1.0, max_step_tokens=6, max_tokens=30, max_depth=5),
    )
    results = Rebase(balance_temperature=0.2, pipeline=pipeline).search(problems, 6, ctx)
    trees = [
        [(n.id, n.parent, n.text, n.token_ids, n.allocation, n.finished, n.truncated) for n in r.nodes] for r in results
    ]
    scores = [[n.step_scores for n in r.nodes] for r in results]
    return trees, scores, counting, results


@pytest.mark.parametrize("batch_tokens", [65536, 600])
def test_pipelined_rebase_grows_the_same_trees_as_lock_step(world, batch_tokens):
    lock, lock_scores, lc, lres = run(world, pipeline=False, batch_tokens=batch_tokens)
    pipe, pipe_scores, pc, pres = run(world, pipeline=True, batch_tokens=batch_tokens)
    assert pipe == lock
    for a, b in zip(pipe_scores, lock_scores):
        for x, y in zip(a, b):
            assert x == pytest.approx(y, abs=1e-4)
    assert [r.info for r in pres] == [r.info for r in lres]
    assert lc.calls == max(r.info["rounds"] for r in lres) > 1
    assert pc.calls == 1 and pc.refills >= max(r.info["rounds"] for r in pres) - 1
    for r in pres:
        assert (
            sum(1 for n in r.nodes[1:] if (n.finished or n.truncated) and not any(m.parent == n.id for m in r.nodes))
            == 6
        )  # exactly N terminal leaves
