"""The async adapter over pybreaker: when it opens, half-opens, closes and what counts."""

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
from aiohttp import web
from prometheus_client import REGISTRY

from services.common.breaker import AsyncCircuitBreaker, BreakerOpen, BreakerState
from services.common.http_resilience import (
    Rejected,
    ResiliencePolicy,
    ResilientCaller,
    RetryPolicy,
    TransientFailure,
    provider_http,
)

pytestmark = pytest.mark.unit

RESET_SECONDS = 0.05


class ProviderDown(Exception):
    pass


def provider_name() -> str:
    return f"test-{uuid.uuid4().hex[:8]}"


def gauge(provider: str) -> float | None:
    return REGISTRY.get_sample_value("provider_circuit_breaker_state", {"provider": provider})


async def fail() -> None:
    raise ProviderDown


async def succeed() -> str:
    return "ok"


async def trip(breaker: AsyncCircuitBreaker, failures: int) -> None:
    for _ in range(failures):
        with pytest.raises(ProviderDown):
            await breaker.call(fail)


async def test_opens_after_fail_max_consecutive_failures_and_refuses_calls() -> None:
    breaker = AsyncCircuitBreaker(provider_name(), fail_max=3, reset_timeout=60)
    await trip(breaker, 2)
    assert breaker.state is BreakerState.CLOSED
    assert breaker.fail_counter == 2

    await trip(breaker, 1)
    assert breaker.state is BreakerState.OPEN
    assert gauge(breaker.provider) == 2

    reached = []

    async def record_call() -> None:
        reached.append(True)

    with pytest.raises(BreakerOpen):
        await breaker.call(record_call)
    assert reached == []


async def test_a_success_resets_the_consecutive_failure_count() -> None:
    breaker = AsyncCircuitBreaker(provider_name(), fail_max=3, reset_timeout=60)
    await trip(breaker, 2)
    assert await breaker.call(succeed) == "ok"
    await trip(breaker, 2)
    assert breaker.state is BreakerState.CLOSED
    assert gauge(breaker.provider) == 0


async def test_half_open_after_reset_timeout_and_closes_on_success() -> None:
    breaker = AsyncCircuitBreaker(provider_name(), fail_max=1, reset_timeout=RESET_SECONDS)
    await trip(breaker, 1)
    with pytest.raises(BreakerOpen):
        await breaker.call(succeed)

    await asyncio.sleep(RESET_SECONDS * 1.5)
    seen_during_trial = []

    async def trial() -> None:
        seen_during_trial.append((breaker.state, gauge(breaker.provider)))

    await breaker.call(trial)
    assert seen_during_trial == [(BreakerState.HALF_OPEN, 1)]
    assert breaker.state is BreakerState.CLOSED
    assert gauge(breaker.provider) == 0
    assert breaker.fail_counter == 0


async def test_failure_in_half_open_reopens_for_a_fresh_timeout() -> None:
    breaker = AsyncCircuitBreaker(provider_name(), fail_max=2, reset_timeout=RESET_SECONDS)
    await trip(breaker, 2)
    await asyncio.sleep(RESET_SECONDS * 1.5)

    await trip(breaker, 1)
    assert breaker.state is BreakerState.OPEN
    assert gauge(breaker.provider) == 2
    with pytest.raises(BreakerOpen):
        await breaker.call(succeed)


async def test_half_open_lets_one_trial_through_at_a_time() -> None:
    breaker = AsyncCircuitBreaker(provider_name(), fail_max=1, reset_timeout=RESET_SECONDS)
    await trip(breaker, 1)
    await asyncio.sleep(RESET_SECONDS * 1.5)
    release = asyncio.Event()

    async def slow_trial() -> str:
        await release.wait()
        return "ok"

    trial = asyncio.create_task(breaker.call(slow_trial))
    await asyncio.sleep(0)
    with pytest.raises(BreakerOpen, match="trial"):
        await breaker.call(succeed)
    release.set()
    assert await trial == "ok"
    assert breaker.state is BreakerState.CLOSED


async def test_exceptions_that_do_not_count_leave_the_breaker_closed() -> None:
    breaker = AsyncCircuitBreaker(
        provider_name(),
        fail_max=1,
        counts_as_failure=lambda error: isinstance(error, ProviderDown),
    )

    async def bug() -> None:
        raise ValueError("a bug, not an outage")

    for _ in range(3):
        with pytest.raises(ValueError):
            await breaker.call(bug)
    assert breaker.state is BreakerState.CLOSED
    assert breaker.fail_counter == 0


@asynccontextmanager
async def provider_answering(statuses: list[int]) -> AsyncIterator[tuple[str, list[web.Request]]]:
    """A provider on a local socket answering `statuses` in turn; yields its URL and requests."""
    requests: list[web.Request] = []

    async def answer(request: web.Request) -> web.Response:
        requests.append(request)
        return web.json_response({"code": "NOT_KAKAO_USER"}, status=statuses[len(requests) - 1])

    app = web.Application()
    app.router.add_post("/send", answer)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    try:
        yield f"http://{host}:{port}/send", requests
    finally:
        await runner.cleanup()


async def test_a_definite_4xx_is_not_a_breaker_failure_but_a_5xx_is() -> None:
    policy = ResiliencePolicy(retry=RetryPolicy(max_attempts=1), breaker_fail_max=1)
    async with provider_answering([400, 400, 400, 503, 200]) as (url, requests), \
            provider_http() as client:
        caller = ResilientCaller(provider_name(), client, policy)
        for _ in range(3):
            outcome = await caller.post_json(url, {"message_id": "m-1"})
            assert isinstance(outcome, Rejected)
            assert outcome.code == "NOT_KAKAO_USER"
        assert caller.breaker.state is BreakerState.CLOSED

        with pytest.raises(TransientFailure):
            await caller.post_json(url, {"message_id": "m-1"})
        assert caller.breaker.state is BreakerState.OPEN
        with pytest.raises(BreakerOpen):
            await caller.post_json(url, {"message_id": "m-1"})
    assert len(requests) == 4


async def test_watchers_see_every_transition_and_a_failing_one_breaks_no_call() -> None:
    breaker = AsyncCircuitBreaker(provider_name(), fail_max=1, reset_timeout=RESET_SECONDS)
    created = breaker.changed_at
    seen: list[BreakerState] = []

    def broken(_: BreakerState) -> None:
        raise RuntimeError("a watcher's bug")

    breaker.watch(broken)
    breaker.watch(seen.append)
    await trip(breaker, 1)  # ProviderDown, not the watcher's RuntimeError
    opened = breaker.changed_at
    assert opened > created
    await asyncio.sleep(RESET_SECONDS * 1.5)
    assert await breaker.call(succeed) == "ok"
    assert seen == [BreakerState.OPEN, BreakerState.HALF_OPEN, BreakerState.CLOSED]
    assert breaker.changed_at > opened
