"""Rate limits (API.md §1): per user, per address, shared by API processes, health exempt."""

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from services.booking.config import Settings
from tests.support import assert_problem, auth, free_port, new_user, serve_api

pytestmark = pytest.mark.integration


@contextlib.asynccontextmanager
async def _api(settings: Settings, **limits: Any) -> AsyncIterator[httpx.AsyncClient]:
    own = settings.model_copy(update={"queue_namespace": "rl" + new_user("")[-10:].lower(),
                                      "metrics_port": free_port(), **limits})
    async with serve_api(own) as url, httpx.AsyncClient(base_url=url, timeout=30) as http:
        yield http


def _assert_limited(response: httpx.Response) -> None:
    assert_problem(response, 429, "RATE_LIMITED")
    assert 1 <= int(response.headers["retry-after"]) <= 2


async def test_each_user_has_a_bucket_of_twice_the_rate(settings: Settings) -> None:
    async with _api(settings, rate_limit_user_per_second=2) as http:
        user, other = new_user("rl"), new_user("rl")
        answers = [await http.get("/points", headers=auth(user)) for _ in range(5)]
        assert [a.status_code for a in answers[:4]] == [200] * 4
        _assert_limited(answers[4])
        assert (await http.get("/points", headers=auth(other))).status_code == 200
        for _ in range(20):  # probes are never limited
            assert (await http.get("/health/live")).status_code == 200


async def test_anonymous_requests_are_limited_per_address(settings: Settings) -> None:
    async with _api(settings, rate_limit_anon_per_second=1,
                    forwarded_allow_ips="127.0.0.1") as http:
        assert [(await http.get("/concerts")).status_code for _ in range(2)] == [200, 200]
        _assert_limited(await http.get("/concerts"))
        # Behind a trusted proxy, the address it names has a bucket of its own.
        forwarded = {"X-Forwarded-For": "203.0.113.7, 127.0.0.1"}
        assert (await http.get("/concerts", headers=forwarded)).status_code == 200
        # A refused token counts against its address too.
        _assert_limited(await http.get("/points", headers={"Authorization": "Bearer nope"}))


async def test_a_client_line_before_the_proxys_own_buys_no_fresh_bucket(settings: Settings) -> None:
    """A proxy that adds its own X-Forwarded-For line (HAProxy's option forwardfor) leaves
    the client's forged line first: every line is read, the proxy's last word wins."""
    async with _api(settings, rate_limit_anon_per_second=1,
                    forwarded_allow_ips="127.0.0.1") as http:
        def through_proxy(forged: str) -> list[tuple[str, str]]:
            return [("X-Forwarded-For", forged), ("X-Forwarded-For", "203.0.113.9")]

        for n in range(2):
            answer = await http.get("/concerts", headers=through_proxy(f"198.51.100.{n}"))
            assert answer.status_code == 200
        _assert_limited(await http.get("/concerts", headers=through_proxy("198.51.100.7")))


async def test_a_forwarded_address_from_an_untrusted_peer_is_ignored(settings: Settings) -> None:
    async with _api(settings, rate_limit_anon_per_second=1) as http:
        for n in range(2):
            spoofed = {"X-Forwarded-For": f"198.51.100.{n}"}
            assert (await http.get("/concerts", headers=spoofed)).status_code == 200
        _assert_limited(await http.get("/concerts", headers={"X-Forwarded-For": "198.51.100.9"}))


async def test_the_limits_hold_across_api_processes(settings: Settings) -> None:
    shared = settings.model_copy(update={"queue_namespace": "rl" + new_user("")[-10:].lower(),
                                         "rate_limit_user_per_second": 1})
    user = new_user("rl")
    same = {"queue_namespace": shared.queue_namespace}
    async with _api(shared, **same) as first, _api(shared, **same) as second:
        assert (await first.get("/points", headers=auth(user))).status_code == 200
        assert (await second.get("/points", headers=auth(user))).status_code == 200
        _assert_limited(await first.get("/points", headers=auth(user)))
        _assert_limited(await second.get("/points", headers=auth(user)))


async def test_without_redis_requests_go_on_unlimited(settings: Settings) -> None:
    nowhere = f"redis://127.0.0.1:{free_port()}/0"
    async with _api(settings, redis_url=nowhere, rate_limit_user_per_second=1) as http:
        user = new_user("rl")
        assert [(await http.get("/points", headers=auth(user))).status_code for _ in range(4)] == [200] * 4
