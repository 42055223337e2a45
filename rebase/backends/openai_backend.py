"""The OpenAI-compatible HTTP policy backend: POST {base_url}/completions (vLLM `serve`, SGLang).

Why: a model too large for the search process, or one server shared by many sweeps, is reached over
HTTP. The search still sends a whole round at once: every request of `generate` is in flight
concurrently (bounded by `max_concurrency`), transient faults are retried with backoff.

How:
- body: {model: cfg.path, prompt: text or token ids, n: 1, temperature, top_p, max_tokens, stop,
  seed, logprobs: 1, return_token_ids: true, return_tokens_as_token_ids: true}. Token ids come from
  `choice.token_ids` (vLLM's return_token_ids), else from "token_id:N" logprob tokens, else only
  the logprob token count is known (token_ids stays empty; generated_tokens is still real).
- a request with n samples is sent as n single-sample calls with seeds seed, seed+1, ... (the rule
  vLLM applies to its own n), because with n > 1 vLLM's usage reports the prefix-cache hit of one
  sibling: a fresh 113-token prompt with n=3 came back as 96 cached, which would drop the prompt
  from the FLOP ledger. It also lets greedy requests have n > 1 (vLLM refuses that). Throughput:
  `max_concurrency` bounds in-flight samples, so set it to the round's sample count on a GPU server.
- finish reasons as in the vLLM backend: length; stop with a string stop_reason -> stop; stop with
  none or a token id -> eos. prompt_tokens from usage; cached tokens from
  usage.prompt_tokens_details.cached_tokens (vLLM: `--enable-prompt-tokens-details`): sample 0
  gets the smallest hit among the request's samples (the one that computed the prompt), the
  others report cached_tokens = prompt_tokens (the prompt is paid once).
- retries (rebase/backends/retry.py) on 429, 5xx, connection errors and timeouts (cfg.timeout_s),
  up to cfg.max_retries, then RunFailure with the status and the URL path. The API key is read
  from os.environ[cfg.api_key_env], sent as a Bearer header and never logged or put in errors.
- generate() is synchronous: it runs the round on a private event loop in a daemon thread, so it
  also works when the caller is itself inside a running asyncio loop.
- flop_spec: from the HF config when cfg.path is a local model folder, else from cfg.params with a
  generic Llama-like shape (see `generic_flop_spec`); neither -> BadInput.

    gen = OpenAIGenerator(OpenAIModel(name="q", path="Qwen/Qwen2.5-Math-7B-Instruct", backend="openai",
                                      base_url="http://127.0.0.1:8000/v1", params=7_620_000_000))
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from pathlib import Path
from typing import Any, Optional
from urllib.parse import urlparse

from rebase.backends.retry import RETRYABLE_STATUS, Retryable, RetryPolicy, retry_async
from rebase.backends.vllm_common import map_finish
from rebase.model_config import OpenAIModel
from rebase.errors import BadInput, RunFailure
from rebase.flops import FlopSpec
from rebase.secrets import scrub_then_cut, split_userinfo, url_secrets
from rebase.types import Completion, GenerationRequest

log = logging.getLogger("rebase.backends.openai")


def generic_flop_spec(n_params: int, vocab: int = 32000) -> FlopSpec:
    """A Llama-like shape for a served model known only by its parameter count: n_params ~=
    12 n_layer d_model^2 with d_model = 128 n_layer (7e9 -> 33 layers x 4224). The `paper` view
    (2 N_total per token) is exact; the attention term of the `policy` view is an estimate."""
    n_layer = max(1, round((n_params / (12 * 128**2)) ** (1 / 3)))
    d_model = 128 * n_layer
    emb = min(vocab * d_model, n_params // 2)
    return FlopSpec(
        n_params=int(n_params),
        n_nonembed=int(n_params - emb),
        n_layer=n_layer,
        d_attn=d_model,
        d_model=d_model,
        vocab=emb // d_model,
    )


def parse_choice_ids(choice: dict[str, Any]) -> tuple[list[int], int]:
    """(token ids, generated token count) of one choice; ids may be [] when the server gives only
    logprob strings (the count is still exact)."""
    if choice.get("token_ids") is not None:
        ids = [int(t) for t in choice["token_ids"]]
        return ids, len(ids)
    tokens = (choice.get("logprobs") or {}).get("tokens")
    if tokens is None:
        raise RunFailure("server returned neither token_ids nor logprobs for a choice")
    if all(isinstance(t, str) and t.startswith("token_id:") for t in tokens):
        ids = [int(t.split(":", 1)[1]) for t in tokens]
        return ids, len(ids)
    return [], len(tokens)


class OpenAIGenerator:
    """Generator protocol over an OpenAI-compatible completions endpoint (see module docstring)."""

    def __init__(self, cfg: OpenAIModel, retry: Optional[RetryPolicy] = None):
        if not cfg.base_url:
            raise BadInput(f"model '{cfg.name}': backend 'openai' needs base_url (e.g. http://127.0.0.1:8000/v1)")
        self.cfg = cfg
        self.name = cfg.name
        self._key: Optional[str] = None
        if cfg.api_key_env:
            key = os.environ.get(cfg.api_key_env)
            if not key:
                raise BadInput(f"model '{cfg.name}': api_key_env: environment variable {cfg.api_key_env} is not set")
            self._key = key
        self.retry = retry or RetryPolicy(max_retries=cfg.max_retries)
        # credentials in the URL travel as an auth object, so the URLs the HTTP client logs have none
        base, self._auth = split_userinfo(cfg.base_url)
        base = base.rstrip("/")
        self._completions_url = base + "/completions"
        self._tokenize_url = (base[: -len("/v1")] if base.endswith("/v1") else base) + "/tokenize"
        local = Path(cfg.path).expanduser()
        self._local = local if local.is_dir() else None
        self._tokenizer: Any = None
        if self._local is not None and any((local / f).is_file() for f in ("tokenizer.json", "tokenizer_config.json")):
            from rebase.backends.loading import load_tokenizer

            self._tokenizer = load_tokenizer(str(local), trust_remote_code=cfg.trust_remote_code)
        if self._local is not None and (local / "config.json").is_file():
            from rebase.backends.vllm_common import flop_spec_for

            self.flop_spec = flop_spec_for(str(local), cfg.params, cfg.trust_remote_code)
        elif cfg.params:
            self.flop_spec = generic_flop_spec(cfg.params)
        else:
            raise BadInput(
                f"model '{cfg.name}': backend 'openai' needs 'params' (the parameter count) "
                f"when path '{cfg.path}' is not a local model folder with a config.json"
            )
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self._thread: Optional[threading.Thread] = None
        self._client: Any = None
        self._sem: Optional[asyncio.Semaphore] = None

    # -- event loop -----------------------------------------------------------------------------

    def _run(self, coro: Any) -> Any:
        if self._loop is None:
            self._loop = asyncio.new_event_loop()
            self._thread = threading.Thread(
                target=self._loop.run_forever, name=f"rebase-openai-{self.name}", daemon=True
            )
            self._thread.start()
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result()

    def _ensure_client(self) -> None:
        if self._client is None:  # created inside the private loop, which owns its connections
            import httpx

            headers = {"Authorization": f"Bearer {self._key}"} if self._key else {}
            limits = httpx.Limits(max_connections=self.cfg.max_concurrency)
            self._client = httpx.AsyncClient(
                headers=headers, timeout=httpx.Timeout(self.cfg.timeout_s), limits=limits, auth=self._auth
            )
            self._sem = asyncio.Semaphore(self.cfg.max_concurrency)

    def _scrub(self, text: str, limit: int = 300) -> str:
        """The API key and base_url's credentials out of `text`, scrubbed before it is cut to
        `limit` (cutting first could leave half a key that no replace would find)."""
        return scrub_then_cut(text, [self._key, *url_secrets(self.cfg.base_url)], limit)

    async def _post(self, url: str, body: dict[str, Any]) -> dict[str, Any]:
        """One POST with retries; returns the JSON body of a 200 answer."""
        import httpx

        self._ensure_client()
        path = urlparse(url).path
        what = f"POST {path}"

        async def once() -> dict[str, Any]:
            assert self._sem is not None
            async with self._sem:
                try:
                    resp = await self._client.post(url, json=body)
                except httpx.TimeoutException:
                    raise Retryable(f"timeout after {self.cfg.timeout_s:g} s") from None
                except httpx.TransportError as e:  # refused, reset, DNS: the server may be restarting
                    raise Retryable(f"connection error ({type(e).__name__})") from None
            if resp.status_code in RETRYABLE_STATUS:
                ra = resp.headers.get("retry-after")
                raise Retryable(
                    f"HTTP {resp.status_code}", float(ra) if ra and ra.replace(".", "", 1).isdigit() else None
                )
            if resp.status_code != 200:
                detail = self._scrub(resp.text)
                raise RunFailure(f"{what}: HTTP {resp.status_code}: {detail}")
            try:
                return resp.json()
            except ValueError:
                raise RunFailure(f"{what}: HTTP 200 with a body that is not JSON") from None

        return await retry_async(once, self.retry, what, log)

    # -- generation -----------------------------------------------------------------------------

    def _body(self, r: GenerationRequest, seed: Optional[int]) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": self.cfg.path,
            "prompt": list(r.prompt_token_ids) if r.prompt_token_ids is not None else r.prompt,
            "n": 1,
            "temperature": r.temperature,
            "top_p": 1.0 if r.temperature == 0 else r.top_p,
            "max_tokens": r.max_tokens,
            "logprobs": 1,
            "return_token_ids": True,
            "return_tokens_as_token_ids": True,
        }
        if r.stop:
            body["stop"] = list(r.stop)
        if seed is not None:
            body["seed"] = seed
        return body

    async def _request(self, r: GenerationRequest) -> list[Completion]:
        """The n samples of one request, as n concurrent single-sample calls (seeds seed + i, as
        vLLM seeds its own n samples): see the module docstring for why not one call with n."""
        seeds = [None if r.seed is None else r.seed + i for i in range(r.n)]
        answers = await asyncio.gather(*(self._post(self._completions_url, self._body(r, s)) for s in seeds))
        path = urlparse(self._completions_url).path
        out: list[Completion] = []
        hits: list[int] = []
        for ans in answers:
            choices = ans.get("choices") or []
            usage = ans.get("usage") or {}
            if len(choices) != 1 or usage.get("prompt_tokens") is None:
                raise RunFailure(
                    f"POST {path}: expected one choice and usage.prompt_tokens, got {len(choices)} choice(s)"
                )
            c, prompt_tokens = choices[0], int(usage["prompt_tokens"])
            hits.append(min(int((usage.get("prompt_tokens_details") or {}).get("cached_tokens") or 0), prompt_tokens))
            ids, count = parse_choice_ids(c)
            finish, stop = map_finish(c.get("finish_reason"), c.get("stop_reason"))
            out.append(
                Completion(
                    text=c.get("text") or "",
                    token_ids=ids,
                    finish_reason=finish,
                    prompt_tokens=prompt_tokens,
                    cached_tokens=prompt_tokens,
                    generated_tokens=count,
                    stop_reason=stop,
                )
            )
        # whichever sample reached the server first computed the shared prompt: its (smallest) hit
        # is the request's, booked on sample 0; the siblings report the prompt as cached
        out[0].cached_tokens = min(hits)
        return out

    def generate(self, requests: list[GenerationRequest]) -> list[list[Completion]]:
        async def round_() -> list[list[Completion]]:
            return list(await asyncio.gather(*(self._request(r) for r in requests)))

        return self._run(round_()) if requests else []

    # -- prompts --------------------------------------------------------------------------------

    def render_chat(self, user: str, system: Optional[str] = None) -> Optional[str]:
        tok = self._tokenizer
        if tok is None or self.cfg.chat_template is False or not getattr(tok, "chat_template", None):
            return None
        messages = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": user}]
        return tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)

    def encode(self, text: str) -> list[int]:
        if self._tokenizer is not None:
            return list(self._tokenizer.encode(text))
        body = {"model": self.cfg.path, "prompt": text, "add_special_tokens": True}
        return [int(t) for t in self._run(self._post(self._tokenize_url, body))["tokens"]]

    def close(self) -> None:
        loop, self._loop = self._loop, None
        if loop is None:
            return
        if self._client is not None:
            asyncio.run_coroutine_threadsafe(self._client.aclose(), loop).result()
            self._client = None
        loop.call_soon_threadsafe(loop.stop)
        if self._thread is not None:
            self._thread.join()
        loop.close()
