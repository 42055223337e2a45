"""Credentials never reach records, config.json, stdout, stderr or logs, wherever they sit in a text.

Why: an OpenAI-compatible server can echo the request's Authorization header in an error body, and
a base_url can carry `user:password@`. The backend cut error bodies to 300 characters before
scrubbing the key, so a key straddling the cut was half written to results.jsonl. Here the key is
put at every offset of an error body, both through the scrubbing function and through a real HTTP
round trip to the fault server, and a base_url with credentials runs a whole sweep.

    OMP_NUM_THREADS=1 .venv/bin/python -m pytest -q tests/test_secrets.py
"""

from __future__ import annotations

import base64
import json
import logging

import pytest
import yaml
from fault_server import FaultServer

from rebase.backends.openai_backend import OpenAIGenerator
from rebase.backends.retry import RetryPolicy
from rebase.cli import main
from rebase.config import OpenAIModel
from rebase.errors import RunFailure
from rebase.secrets import redact_url, scrub, scrub_then_cut, url_secrets
from rebase.types import GenerationRequest

KEY = "sk-live-4c9e1f7ab2d84e0f9a3c"
PASSWORD = "pw-Zq8r7T2x"


def fragments(secret: str, k: int = 6) -> list[str]:
    """Every k-character piece of a secret: none may survive anywhere."""
    return [secret[i : i + k] for i in range(len(secret) - k + 1)]


def leaks(text: str, secret: str) -> list[str]:
    return [f for f in fragments(secret) if f in text]


def test_scrub_then_cut_at_every_offset():
    for limit in (50, 300):
        for offset in range(0, 2 * limit):
            body = "e" * offset + KEY + " and more " * 40
            out = scrub_then_cut(body, [KEY], limit)
            assert len(out) <= limit and not leaks(out, KEY), (limit, offset, out)


def test_redact_url_and_url_secrets():
    url = f"https://alice:{PASSWORD}@api.example.com:8443/v1?x=1"
    assert redact_url(url) == "https://***@api.example.com:8443/v1?x=1"
    assert redact_url("http://127.0.0.1:8000/v1") == "http://127.0.0.1:8000/v1"
    basic = base64.b64encode(f"alice:{PASSWORD}".encode()).decode()
    assert {PASSWORD, basic} <= set(url_secrets(url))
    text = f"GET {url} failed; Authorization: Basic {basic}"
    out = scrub(text, url_secrets(url))
    assert PASSWORD not in out and basic not in out and "alice" not in out


def _gen(url: str, monkeypatch) -> OpenAIGenerator:
    monkeypatch.setenv("REBASE_TEST_KEY", KEY)
    cfg = OpenAIModel(
        name="remote",
        path="served",
        backend="openai",
        base_url=url,
        api_key_env="REBASE_TEST_KEY",
        max_retries=0,
        params=7_000_000,
    )
    return OpenAIGenerator(cfg, retry=RetryPolicy(0, 0.001, 2.0, 0.01, seed=0))


def test_echoed_key_at_every_offset_around_the_cut(monkeypatch, caplog):
    """The server echoes "Bearer <key>" after N padding characters; N sweeps the 300-character cut."""
    offsets = list(range(260, 310))
    with FaultServer(script=[f"401pad:{n}" for n in offsets]) as srv:
        gen = _gen(srv.base_url, monkeypatch)
        msgs = []
        with caplog.at_level(logging.DEBUG):
            for _ in offsets:
                with pytest.raises(RunFailure) as err:
                    gen.generate([GenerationRequest(prompt="x", max_tokens=2)])
                msgs.append(str(err.value))
        gen.close()
    assert srv.calls == len(offsets)
    for n, msg in zip(offsets, msgs):
        assert "HTTP 401" in msg and not leaks(msg, KEY), (n, msg)
    assert not leaks(caplog.text, KEY)


def test_base_url_credentials_stay_out_of_everything(tmp_path, monkeypatch, capsys, caplog, tiny_dir):
    monkeypatch.setenv("REBASE_TEST_KEY", KEY)
    out = tmp_path / "out"
    with FaultServer(script=["401pad:290", "500"]) as srv:
        url = srv.base_url.replace("http://", f"http://alice:{PASSWORD}@")
        cfg = {
            "models": [
                {
                    "name": "served",
                    "path": str(tiny_dir / "llama"),
                    "backend": "openai",
                    "base_url": url,
                    "api_key_env": "REBASE_TEST_KEY",
                    "max_retries": 0,
                    "timeout_s": 5,
                }
            ],
            "dataset": {"name": "arith", "size": 2},
            "strategies": [{"name": "greedy"}],
            "sampling": {"max_tokens": 4, "max_step_tokens": 4},
            "batch_problems": 1,
        }
        p = tmp_path / "c.yaml"
        p.write_text(yaml.safe_dump(cfg))
        with caplog.at_level(logging.DEBUG):
            code = main(["sweep", str(p), "--out", str(out), "--no-progress"])
        sent = srv.requests
    cap = capsys.readouterr()
    assert code == 1  # both problems failed: the 401 and the 500
    basic = base64.b64encode(f"alice:{PASSWORD}".encode()).decode()
    texts = [cap.out, cap.err, caplog.text] + [f.read_text(errors="replace") for f in out.rglob("*") if f.is_file()]
    for t in texts:
        assert PASSWORD not in t and basic not in t and not leaks(t, KEY)
    stored = json.loads((out / "config.json").read_text())["config"]["models"][0]["base_url"]
    assert stored == srv.base_url.replace("http://", "http://***@")
    errors = [json.loads(x)["error"] for x in (out / "results.jsonl").read_text().splitlines()]
    assert any("HTTP 401" in e for e in errors) and any("HTTP 500" in e for e in errors)
    assert sent and all("Authorization" in r["headers"] for r in sent)  # the credentials did reach the server
