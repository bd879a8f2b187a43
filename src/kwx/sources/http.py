"""Retries with jittered exponential backoff, shared by every HTTP source.

A request is rebuilt for every attempt (`build` is a callable) so that signed requests carry
a fresh timestamp each time: Kalshi rejects reused signatures, and a retry must never reuse
headers. Time and randomness are injectable so tests run instantly and deterministically.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx

from kwx.domain.secrets import redact

log = logging.getLogger(__name__)

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})


class SourceError(RuntimeError):
    """A source failed for good (after retries, or with a non-retryable answer)."""

    def __init__(
        self,
        source: str,
        message: str,
        *,
        status: int | None = None,
        url: str | None = None,
        body: str | None = None,
    ) -> None:
        # Redacted once, here: every connector's errors pass through this constructor, and
        # their text and body go on to logs, meta.bad_input and exec.orders (a server that
        # echoes our headers or a key= query parameter would otherwise leak them).
        message = redact(message)
        url = None if url is None else redact(url)
        body = None if body is None else redact(body)
        self.source = source
        self.status = status
        self.url = url
        self.body = body
        where = f"{source}" + (f" {url}" if url else "") + (f" (HTTP {status})" if status else "")
        super().__init__(f"{where}: {message}")


class PayloadError(SourceError):
    """A response that arrived but cannot be understood; `body` keeps the raw text."""


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 6
    base_delay_s: float = 0.25
    max_delay_s: float = 10.0
    retry_statuses: frozenset[int] = field(default=RETRY_STATUSES)

    def delay(self, attempt: int, rng: random.Random) -> float:
        """Full jitter: uniform in [0, min(cap, base * 2**attempt)] (AWS's recommendation)."""
        return rng.uniform(0.0, min(self.max_delay_s, self.base_delay_s * (2**attempt)))


@dataclass
class RetryStats:
    attempts: int = 0
    retries: int = 0
    statuses: dict[int, int] = field(default_factory=dict)
    transport_errors: int = 0


def send_with_retries(
    client: httpx.Client,
    build: Callable[[], httpx.Request],
    *,
    source: str,
    policy: RetryPolicy | None = None,
    sleep: Callable[[float], None] = time.sleep,
    rng: random.Random | None = None,
    stats: RetryStats | None = None,
) -> httpx.Response:
    """Send, retrying 429/5xx answers and timeouts/connection errors; return the last answer.

    Non-retryable answers (200, 404, 400 …) are returned for the caller to judge; after the
    last attempt a retryable status is returned too, a transport error raises SourceError.
    """
    policy = policy or RetryPolicy()
    rng = rng or random.Random()
    stats = stats if stats is not None else RetryStats()
    last_error: Exception | None = None
    for attempt in range(policy.max_attempts):
        request = build()
        stats.attempts += 1
        try:
            response = client.send(request)
        except (httpx.TimeoutException, httpx.TransportError) as exc:
            stats.transport_errors += 1
            last_error = exc
            log.warning(
                "%s %s: %s (attempt %d)", source, request.url.path, type(exc).__name__, attempt + 1
            )
        else:
            stats.statuses[response.status_code] = stats.statuses.get(response.status_code, 0) + 1
            if response.status_code not in policy.retry_statuses:
                return response
            if attempt == policy.max_attempts - 1:
                return response
            response.close()
            log.info(
                "%s %s: HTTP %d, retrying (attempt %d)",
                source,
                request.url.path,
                response.status_code,
                attempt + 1,
            )
        if attempt < policy.max_attempts - 1:
            stats.retries += 1
            sleep(policy.delay(attempt, rng))
    raise SourceError(
        source,
        f"gave up after {policy.max_attempts} attempts: {last_error}",
        url=str(request.url.copy_with(query=None)),
    )
