"""Retry policy for remote backends: exponential backoff with seeded jitter.

Why: an inference server under load answers 429 / 503, drops connections or stalls; a search round
of hundreds of requests must ride that out instead of failing the whole batch, yet a dead server
must fail fast with a clear message (RunFailure: the CLI exits 1 and keeps finished records).

How: an operation raises `Retryable(reason)` for a transient fault (429, 5xx, connection error,
timeout) and anything else for a permanent one. `retry_async` runs it up to 1 + max_retries times,
sleeping `policy.delay(k)` between attempts: equal jitter around base * multiplier**k, capped at
max_delay_s (a server's Retry-After is honoured up to the same cap). With a `seed` the delays are
reproducible (tests use tiny, seeded delays); without one they are random.

    policy = RetryPolicy(max_retries=3, base_delay_s=0.5, seed=0)
    body = await retry_async(lambda: post_once(...), policy, what="POST /v1/completions")
"""

from __future__ import annotations

import asyncio
import logging
import random
from dataclasses import dataclass
from typing import Awaitable, Callable, Optional, TypeVar

from rebase.errors import RunFailure

T = TypeVar("T")
log = logging.getLogger("rebase.backends.retry")

RETRYABLE_STATUS = frozenset({408, 425, 429}) | frozenset(range(500, 600))


class Retryable(Exception):
    """A transient fault. `reason` is a short, secret-free description (e.g. "HTTP 503");
    `retry_after` the server's requested wait in seconds, if it sent one."""

    def __init__(self, reason: str, retry_after: Optional[float] = None):
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long to retry.

    max_retries: retries after the first attempt (0 = fail on the first transient fault).
    base_delay_s: the first backoff; attempt k waits about base_delay_s * multiplier**k.
    multiplier: growth factor of the backoff.
    max_delay_s: cap on any single wait (also caps a server's Retry-After).
    seed: seeds the jitter so the sequence of waits is reproducible; None = random.
    """

    max_retries: int = 3
    base_delay_s: float = 0.5
    multiplier: float = 2.0
    max_delay_s: float = 30.0
    seed: Optional[int] = None

    def __post_init__(self) -> None:
        if self.max_retries < 0:
            raise ValueError(f"max_retries must be >= 0, got {self.max_retries}")
        if self.base_delay_s < 0 or self.max_delay_s < 0 or self.multiplier < 1:
            raise ValueError("delays must be >= 0 and multiplier >= 1")

    def rng(self) -> random.Random:
        return random.Random(self.seed)

    def delay(self, k: int, rng: random.Random, retry_after: Optional[float] = None) -> float:
        """The wait before retry k (0-based): half the exponential step plus a random half, so
        concurrent clients spread out but never retry immediately."""
        step = min(self.max_delay_s, self.base_delay_s * self.multiplier**k)
        wait = step / 2 + rng.uniform(0, step / 2)
        if retry_after is not None:
            wait = max(wait, min(retry_after, self.max_delay_s))
        return wait


async def retry_async(
    op: Callable[[], Awaitable[T]], policy: RetryPolicy, what: str, logger: logging.Logger = log
) -> T:
    """Run `op` until it succeeds, raises a non-Retryable error, or the retries run out
    (RunFailure naming `what`, the last reason and the attempt count)."""
    rng = policy.rng()
    for k in range(policy.max_retries + 1):
        try:
            return await op()
        except Retryable as e:
            if k == policy.max_retries:
                raise RunFailure(f"{what}: {e.reason} after {k + 1} attempt(s)") from None
            wait = policy.delay(k, rng, e.retry_after)
            logger.warning("%s: %s; retry %d/%d in %.2f s", what, e.reason, k + 1, policy.max_retries, wait)
            await asyncio.sleep(wait)
    raise AssertionError("unreachable")
