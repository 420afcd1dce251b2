"""The one resilient way to call a provider over HTTP.

Every provider client (Kakao, SMS, venue) goes through `ResilientCaller`, which
puts a rate limit, a per-attempt timeout, retries with capped exponential
backoff and full jitter, and a circuit breaker around each request. Outcomes are
explicit: `Accepted` (2xx), `Rejected` (a definite 4xx answer: not retried, not a
breaker failure), or an exception, `TransientFailure` (5xx, 429, timeouts or
connection errors outlasted every attempt) or `BreakerOpen` (nothing was sent).

The client is our own (`http_client`): the workers make one such call per event,
and it runs on the caller's event loop, with no thread of its own to hand each request
to. `make bench SCENARIO=calibrate` measures this caller beside aiohttp and httpx.
"""

import asyncio
import functools
import logging
import random
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import orjson

from services.common.breaker import AsyncCircuitBreaker, BreakerOpen
from services.common.http_client import HttpClient, HttpClientError
from services.common.provider_metrics import (
    PROVIDER_ATTEMPT_DURATION,
    PROVIDER_ATTEMPTS,
    PROVIDER_CALLS,
    ProviderChildren,
)
from services.common.rate_limit import TokenBucket

__all__ = [
    "TRACE_ID_HEADER",
    "Accepted",
    "BreakerOpen",
    "Outcome",
    "Rejected",
    "ResiliencePolicy",
    "ResilientCaller",
    "RetryPolicy",
    "TransientFailure",
    "parse_retry_after",
    "provider_http",
]

log = logging.getLogger(__name__)

# Carries the trace id of the originating HTTP request through to the provider.
TRACE_ID_HEADER = "X-Trace-Id"
TOO_MANY_REQUESTS = 429
_JSON = {"Content-Type": "application/json"}


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 3
    base_delay: float = 0.2
    max_delay: float = 5.0
    # A provider asking for a long pause must not stall a worker for minutes.
    max_retry_after: float = 30.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1 or min(self.base_delay, self.max_delay, self.max_retry_after) < 0:
            raise ValueError("max_attempts must be >= 1 and delays >= 0")


@dataclass(frozen=True)
class ResiliencePolicy:
    timeout: float = 3.0
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    rate_per_second: float = 50.0
    burst: int = 10
    breaker_fail_max: int = 5
    breaker_reset_timeout: float = 30.0

    def __post_init__(self) -> None:
        if self.timeout <= 0 or self.breaker_fail_max < 1 or self.breaker_reset_timeout < 0:
            raise ValueError("timeout must be > 0, breaker_fail_max >= 1, reset_timeout >= 0")


@dataclass(frozen=True)
class Accepted:
    """The provider took the request (2xx); `body` is its JSON, or its text if not JSON."""

    status: int
    body: object
    attempts: int


@dataclass(frozen=True)
class Rejected:
    """The provider answered definitely no (4xx other than 429); retrying cannot help."""

    status: int
    body: object
    attempts: int

    @property
    def code(self) -> str | None:
        """The provider's machine code, e.g. NOT_KAKAO_USER, when its body has one."""
        code = self.body.get("code") if isinstance(self.body, dict) else None
        return code if isinstance(code, str) else None


Outcome = Accepted | Rejected


class TransientFailure(Exception):
    """Every attempt failed in a way that might have passed (5xx, 429, timeout, network)."""

    def __init__(self, provider: str, attempts: int, reason: str, status: int | None) -> None:
        detail = f" (HTTP {status})" if status is not None else ""
        super().__init__(f"{provider}: {reason}{detail} after {attempts} attempt(s)")
        self.provider = provider
        self.attempts = attempts
        self.reason = reason
        self.status = status


class _TransientAttempt(Exception):
    """One attempt failed transiently; the breaker counts it and the loop may retry."""

    def __init__(self, reason: str, status: int | None = None, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status
        self.retry_after = retry_after


def _is_transient(error: Exception) -> bool:
    return isinstance(error, _TransientAttempt)


def parse_retry_after(value: str | None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or HTTP date)."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


@asynccontextmanager
async def provider_http() -> AsyncIterator[HttpClient]:
    """The HTTP client a process shares among its providers' `ResilientCaller`s."""
    client = HttpClient()
    try:
        yield client
    finally:
        await client.aclose()


def _decoded(body: bytes) -> object:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        return body.decode("utf-8", errors="replace")


class ResilientCaller:
    """Call one provider through its rate limit, timeout, retries and breaker.

    Keep one per provider per process: the breaker and the rate limit only mean
    something when every call to that provider shares them. The HTTP client
    (`provider_http`) is borrowed, not owned; whoever opened it closes it.
    """

    def __init__(
        self,
        provider: str,
        client: HttpClient,
        policy: ResiliencePolicy | None = None,
    ) -> None:
        self.provider = provider
        self.policy = policy or ResiliencePolicy()
        self._client = client
        self._durations = PROVIDER_ATTEMPT_DURATION.labels(provider)
        self._attempts = ProviderChildren(PROVIDER_ATTEMPTS, provider)
        self._calls = ProviderChildren(PROVIDER_CALLS, provider)
        self._bucket = TokenBucket(self.policy.rate_per_second, self.policy.burst)
        self.breaker = AsyncCircuitBreaker(
            provider,
            fail_max=self.policy.breaker_fail_max,
            reset_timeout=self.policy.breaker_reset_timeout,
            counts_as_failure=_is_transient,
        )

    async def post_json(
        self,
        url: str,
        payload: Mapping[str, object],
        *,
        headers: Mapping[str, str] | None = None,
        trace_id: str | None = None,
    ) -> Outcome:
        """POST `payload` as JSON; the same body (and so the same id) on every attempt."""
        body, sent_headers = orjson.dumps(payload), {**(headers or {}), **_JSON}
        if trace_id:
            sent_headers[TRACE_ID_HEADER] = trace_id
        attempts = self.policy.retry.max_attempts
        for attempt in range(1, attempts + 1):
            send = functools.partial(self._attempt, url, body, sent_headers, attempt)
            try:
                outcome = await self.breaker.call(send)
            except BreakerOpen:
                self._count_call("breaker_open")
                raise
            except _TransientAttempt as failure:
                if attempt == attempts:
                    self._count_call("transient_failure")
                    raise TransientFailure(
                        self.provider, attempt, failure.reason, failure.status
                    ) from failure
                await self._pause(attempt, failure)
            else:
                self._count_call("accepted" if isinstance(outcome, Accepted) else "rejected")
                return outcome
        raise AssertionError("unreachable: max_attempts must be at least 1")

    async def _attempt(self, url: str, body: bytes, headers: Mapping[str, str], attempt: int) -> Outcome:
        await self._bucket.acquire()
        started = time.perf_counter()
        try:
            # The timeout bounds the whole attempt, from connecting to the last byte of the answer.
            async with asyncio.timeout(self.policy.timeout):
                response = await self._client.post(url, headers, body)
        except TimeoutError as error:
            raise self._failed_attempt(_TransientAttempt("timeout")) from error
        except HttpClientError as error:  # could not connect, or the connection broke
            raise self._failed_attempt(_TransientAttempt("connection_error")) from error
        finally:
            self._durations.observe(time.perf_counter() - started)
        return self._classify(response.status, response.body, response.headers.get("retry-after"), attempt)

    def _classify(self, status: int, body: bytes, retry_after: str | None, attempt: int) -> Outcome:
        if status == TOO_MANY_REQUESTS or status >= 500:
            reason = "throttled" if status == TOO_MANY_REQUESTS else "server_error"
            raise self._failed_attempt(_TransientAttempt(reason, status, parse_retry_after(retry_after)))
        if 200 <= status < 300:
            self._attempts["accepted"].inc()
            return Accepted(status, _decoded(body), attempt)
        self._attempts["rejected"].inc()
        return Rejected(status, _decoded(body), attempt)

    def _failed_attempt(self, failure: _TransientAttempt) -> _TransientAttempt:
        self._attempts[failure.reason].inc()
        return failure

    async def _pause(self, attempt: int, failure: _TransientAttempt) -> None:
        retry = self.policy.retry
        if failure.retry_after is not None:
            delay = min(failure.retry_after, retry.max_retry_after)
        else:
            ceiling = min(retry.max_delay, retry.base_delay * 2 ** (attempt - 1))
            # Full jitter spreads the retries of many workers hit by the same outage.
            delay = random.uniform(0.0, ceiling)  # noqa: S311 - jitter, not a secret
        log.warning(
            "provider %s attempt %d failed (%s, status %s); retrying in %.3fs",
            self.provider,
            attempt,
            failure.reason,
            failure.status,
            delay,
        )
        await asyncio.sleep(delay)

    def _count_call(self, outcome: str) -> None:
        self._calls[outcome].inc()
