"""A local fault-injecting OpenAI-compatible server for the HTTP backend's tests (127.0.0.1 only).

Why: retries, timeouts, key handling and the concurrency bound must be tested deterministically,
without a model. The server answers POST /v1/completions following a script of faults, one entry
per call, then canned completions:

    "500" / "429" / "503"   that status (429 with Retry-After: 0)
    "401echo"               401 whose body echoes the Authorization header (must be scrubbed)
    "401pad:N"              the same after N characters of padding (a key at any offset of the body)
    "sleep:S"               sleep S seconds, then answer normally (past the client's timeout)
    "drop"                  close the connection without an answer
    "ok"                    a canned completion (also what every call after the script gets)

A canned completion has `n` choices; choice i has token ids [100 + i, 101, 102], text "t{i}",
finish_reason "stop" with stop_reason = the first stop string when the body has stop strings, else
"length". `id_mode` picks how ids are returned: "token_ids" (vLLM's return_token_ids),
"logprob_ids" ("token_id:N" logprob tokens) or "logprob_text" (token strings only). usage has
prompt_tokens (ids: their count; text: its whitespace-separated words) and cached_tokens = `cached`.
POST /tokenize returns one token per character; GET /health answers 200.

    with FaultServer(script=["500", "429"]) as srv:
        url = srv.base_url          # http://127.0.0.1:PORT/v1
        srv.calls, srv.max_inflight, srv.requests   # what the tests check
"""

from __future__ import annotations

import asyncio
import socket
import threading
from typing import Any, Optional


class FaultServer:
    def __init__(
        self, script: Optional[list[str]] = None, id_mode: str = "token_ids", cached: int = 0, ok_delay_s: float = 0.0
    ):
        self.script = list(script or [])
        self.id_mode = id_mode
        self.cached = cached
        self.ok_delay_s = ok_delay_s
        self.calls = 0
        self.inflight = 0
        self.max_inflight = 0
        self.requests: list[dict[str, Any]] = []  # {"headers": ..., "body": ..., "path": ...}
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self._thread: Optional[threading.Thread] = None
        self._runner: Any = None
        self.port = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    # -- handlers -------------------------------------------------------------------------------

    def _choice(self, i: int, body: dict[str, Any]) -> dict[str, Any]:
        ids = [100 + i, 101, 102]
        stop = body.get("stop") or []
        choice: dict[str, Any] = {
            "index": i,
            "text": f"t{i}",
            "finish_reason": "stop" if stop else "length",
            "stop_reason": stop[0] if stop else None,
        }
        if self.id_mode == "token_ids":
            choice["token_ids"] = ids
            choice["logprobs"] = {"tokens": [f"token_id:{t}" for t in ids]}
        elif self.id_mode == "logprob_ids":
            choice["logprobs"] = {"tokens": [f"token_id:{t}" for t in ids]}
        else:
            choice["logprobs"] = {"tokens": ["t", f"{i}", "!"]}
        return choice

    async def _completions(self, request: Any) -> Any:
        from aiohttp import web

        body = await request.json()
        self.calls += 1
        self.requests.append({"path": request.path, "headers": dict(request.headers), "body": body})
        action = self.script.pop(0) if self.script else "ok"
        self.inflight += 1
        self.max_inflight = max(self.max_inflight, self.inflight)
        try:
            if action in ("500", "503"):
                return web.json_response({"error": {"message": "injected fault"}}, status=int(action))
            if action == "429":
                return web.json_response({"error": {"message": "slow down"}}, status=429, headers={"Retry-After": "0"})
            if action == "401echo":
                return web.Response(status=401, text=f"bad key: {request.headers.get('Authorization')}")
            if action.startswith("401pad:"):
                pad = "x" * int(action.split(":", 1)[1])
                return web.Response(status=401, text=f"{pad}{request.headers.get('Authorization')} rest of the body")
            if action == "drop":
                request.transport.close()
                return web.Response(status=500)
            if action.startswith("sleep:"):
                await asyncio.sleep(float(action.split(":", 1)[1]))
            await asyncio.sleep(self.ok_delay_s)
            prompt = body["prompt"]
            n_prompt = len(prompt) if isinstance(prompt, list) else len(str(prompt).split())
            n = int(body.get("n", 1))
            return web.json_response(
                {
                    "id": f"cmpl-{self.calls}",
                    "object": "text_completion",
                    "model": body.get("model"),
                    "choices": [self._choice(i, body) for i in range(n)],
                    "usage": {
                        "prompt_tokens": n_prompt,
                        "completion_tokens": 3 * n,
                        "total_tokens": n_prompt + 3 * n,
                        "prompt_tokens_details": {"cached_tokens": self.cached},
                    },
                }
            )
        finally:
            self.inflight -= 1

    async def _tokenize(self, request: Any) -> Any:
        from aiohttp import web

        body = await request.json()
        self.requests.append({"path": request.path, "headers": dict(request.headers), "body": body})
        tokens = [ord(ch) for ch in body["prompt"]]
        return web.json_response({"tokens": tokens, "count": len(tokens), "max_model_len": 4096})

    async def _health(self, request: Any) -> Any:
        from aiohttp import web

        return web.Response(text="ok")

    # -- lifecycle ------------------------------------------------------------------------------

    def start(self) -> "FaultServer":
        from aiohttp import web

        app = web.Application()
        app.router.add_post("/v1/completions", self._completions)
        app.router.add_post("/tokenize", self._tokenize)
        app.router.add_get("/health", self._health)
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))  # a free port chosen by the OS
        self.port = sock.getsockname()[1]
        self._loop = asyncio.new_event_loop()
        self._runner = web.AppRunner(app, access_log=None)
        self._loop.run_until_complete(self._runner.setup())
        self._loop.run_until_complete(web.SockSite(self._runner, sock).start())
        self._thread = threading.Thread(target=self._loop.run_forever, name="fault-server", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._loop is None:
            return
        asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()
        self._loop = None

    def __enter__(self) -> "FaultServer":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()
