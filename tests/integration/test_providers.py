"""Provider clients against the provider simulators, over real sockets."""

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime

import httpx
import pytest
from prometheus_client import REGISTRY

from services.booking.adapters.venue_client import VenueClient, VenueRegistration
from services.common.http_client import HttpClient
from services.common.http_resilience import (
    Accepted,
    BreakerOpen,
    Rejected,
    ResiliencePolicy,
    ResilientCaller,
    RetryPolicy,
    TransientFailure,
    provider_http,
)
from services.notifier.adapters.kakao import (
    AlimTalkMessage,
    AlimTalkVariables,
    KakaoAlimTalkClient,
)
from services.notifier.adapters.sms import SmsClient, SmsMessage
from tests.support import KAKAO_KEY, SMS_KEY
from workers.devstack.simulators import SimulatorServer

pytestmark = pytest.mark.integration

FAST_RETRIES = RetryPolicy(max_attempts=3, base_delay=0.01, max_delay=0.05)
FAST = ResiliencePolicy(timeout=1.0, retry=FAST_RETRIES, rate_per_second=1000, burst=100)


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


@pytest.fixture(scope="module")
def venue_server() -> Iterator[SimulatorServer]:
    with SimulatorServer("venue") as server:
        yield server


@pytest.fixture
def kakao_sim(kakao_server: SimulatorServer) -> SimulatorServer:
    kakao_server.reset()
    return kakao_server


@pytest.fixture
def sms_sim(sms_server: SimulatorServer) -> SimulatorServer:
    sms_server.reset()
    return sms_server


@pytest.fixture
def venue_sim(venue_server: SimulatorServer) -> SimulatorServer:
    venue_server.reset()
    return venue_server


@pytest.fixture
async def http() -> AsyncIterator[HttpClient]:
    async with provider_http() as client:
        yield client


def kakao_client(
    http: HttpClient, sim: SimulatorServer, policy: ResiliencePolicy = FAST
) -> KakaoAlimTalkClient:
    caller = ResilientCaller(unique("kakao"), http, policy)
    return KakaoAlimTalkClient(caller, base_url=sim.base_url, api_key=KAKAO_KEY, sender_key="sender-1")


def sms_client(
    http: HttpClient, sim: SimulatorServer, policy: ResiliencePolicy = FAST, key: str = SMS_KEY
) -> SmsClient:
    return SmsClient(ResilientCaller(unique("sms"), http, policy), base_url=sim.base_url, api_key=key)


def venue_client(
    http: HttpClient, sim: SimulatorServer, policy: ResiliencePolicy = FAST
) -> VenueClient:
    return VenueClient(ResilientCaller(unique("venue"), http, policy), base_url=sim.base_url)


def alimtalk(recipient: str = "01012345678") -> AlimTalkMessage:
    variables = AlimTalkVariables(
        name="Kim",
        concert_title="Spring Gala",
        starts_at=datetime(2026, 12, 24, 19, 0, tzinfo=UTC),
        seat_no=7,
        amount=99000,
    )
    return AlimTalkMessage(unique("msg"), "TICKET_CONFIRMED", recipient, variables)


def sms(to: str = "01012345678") -> SmsMessage:
    return SmsMessage(unique("msg"), to, "Your ticket is confirmed.")


def registration(seat_no: int = 7) -> VenueRegistration:
    return VenueRegistration(
        registration_id=unique("reg"),
        ticket_id=unique("ticket"),
        concert_title="Spring Gala",
        schedule_id=unique("schedule"),
        starts_at=datetime(2026, 12, 24, 19, 0, tzinfo=UTC),
        seat_no=seat_no,
        holder="Kim",
    )


async def test_retries_on_503_then_succeeds_carrying_the_same_message_id(
    http: HttpClient, kakao_sim: SimulatorServer
) -> None:
    kakao_sim.behave(mode="error", status=503, times=2)
    message = alimtalk()

    outcome = await kakao_client(http, kakao_sim).send(message, trace_id="trace-123")

    assert isinstance(outcome, Accepted)
    assert outcome.attempts == 3
    calls = kakao_sim.calls()
    assert [call.outcome for call in calls] == ["failed", "failed", "accepted"]
    assert {call.key for call in calls} == {message.message_id}
    assert all(call.headers["x-trace-id"] == "trace-123" for call in calls)
    assert calls[0].headers["authorization"] == f"KakaoAK {KAKAO_KEY}"
    assert calls[0].body == {
        "message_id": message.message_id,
        "sender_key": "sender-1",
        "template_code": "TICKET_CONFIRMED",
        "recipient": "01012345678",
        "variables": {
            "name": "Kim",
            "concert_title": "Spring Gala",
            "starts_at": "2026-12-24T19:00:00+00:00",
            "seat_no": 7,
            "amount": 99000,
        },
    }


async def test_429_retry_after_is_honoured(http: HttpClient, sms_sim: SimulatorServer) -> None:
    sms_sim.behave(mode="error", status=429, retry_after=1, times=1)
    started = time.monotonic()

    outcome = await sms_client(http, sms_sim).send(sms())

    assert isinstance(outcome, Accepted)
    assert time.monotonic() - started >= 0.95
    assert [call.status for call in sms_sim.calls()] == [429, 200]


async def test_retry_after_is_capped(http: HttpClient, sms_sim: SimulatorServer) -> None:
    sms_sim.behave(mode="error", status=429, retry_after=3600, times=1)
    capped = ResiliencePolicy(retry=RetryPolicy(base_delay=0.01, max_retry_after=0.2))
    started = time.monotonic()

    outcome = await sms_client(http, sms_sim, capped).send(sms())

    elapsed = time.monotonic() - started
    assert isinstance(outcome, Accepted)
    assert 0.19 <= elapsed < 2


async def test_timeout_on_a_slow_provider_is_transient_and_the_retry_is_deduplicated(
    http: HttpClient, kakao_sim: SimulatorServer
) -> None:
    kakao_sim.behave(mode="ok", delay_seconds=0.5)
    impatient = ResiliencePolicy(timeout=0.15, retry=RetryPolicy(max_attempts=2, base_delay=0.01))

    with pytest.raises(TransientFailure) as failure:
        await kakao_client(http, kakao_sim, impatient).send(alimtalk())

    assert failure.value.reason == "timeout"
    assert failure.value.attempts == 2
    # The slow provider took the first attempt anyway; the stable id makes the retry harmless.
    assert [call.outcome for call in kakao_sim.calls()] == ["accepted", "duplicate"]


async def test_definite_4xx_is_rejected_without_retry_or_breaker_failure(
    http: HttpClient, kakao_sim: SimulatorServer
) -> None:
    kakao_sim.behave(mode="error", status=400, code="NOT_KAKAO_USER")
    touchy = ResiliencePolicy(retry=FAST_RETRIES, breaker_fail_max=1)
    client = kakao_client(http, kakao_sim, touchy)

    outcome = await client.send(alimtalk())

    assert isinstance(outcome, Rejected)
    assert (outcome.status, outcome.code, outcome.attempts) == (400, "NOT_KAKAO_USER", 1)
    assert len(kakao_sim.calls()) == 1
    assert isinstance(await client.send(alimtalk()), Rejected)
    assert len(kakao_sim.calls()) == 2


async def test_wrong_api_key_is_answered_401_and_rejected(
    http: HttpClient, sms_sim: SimulatorServer
) -> None:
    outcome = await sms_client(http, sms_sim, key="wrong").send(sms())

    assert isinstance(outcome, Rejected)
    assert outcome.status == 401
    assert sms_sim.stats()["unauthorized"] == 1


async def test_breaker_opens_after_repeated_5xx_and_refuses_without_sending(
    http: HttpClient, venue_sim: SimulatorServer
) -> None:
    venue_sim.behave(mode="error", status=503)
    policy = ResiliencePolicy(
        retry=RetryPolicy(max_attempts=1), breaker_fail_max=3, breaker_reset_timeout=0.2
    )
    caller = ResilientCaller(unique("venue"), http, policy)
    client = VenueClient(caller, base_url=venue_sim.base_url)
    for _ in range(3):
        with pytest.raises(TransientFailure):
            await client.register(registration())

    with pytest.raises(BreakerOpen):
        await client.register(registration())
    assert len(venue_sim.calls()) == 3
    labels = {"provider": caller.provider}
    assert REGISTRY.get_sample_value("provider_circuit_breaker_state", labels) == 2

    venue_sim.behave(mode="ok")
    await asyncio.sleep(0.25)
    assert isinstance(await client.register(registration()), Accepted)
    assert REGISTRY.get_sample_value("provider_circuit_breaker_state", labels) == 0
    assert len(venue_sim.calls()) == 4


async def test_an_outage_during_retries_ends_the_call_with_breaker_open(
    http: HttpClient, kakao_sim: SimulatorServer
) -> None:
    kakao_sim.behave(mode="error", status=500)
    policy = ResiliencePolicy(retry=RetryPolicy(max_attempts=5, base_delay=0.01), breaker_fail_max=2)

    with pytest.raises(BreakerOpen):
        await kakao_client(http, kakao_sim, policy).send(alimtalk())
    assert len(kakao_sim.calls()) == 2


async def test_connection_refused_is_transient(http: HttpClient) -> None:
    with SimulatorServer("sms", api_key=SMS_KEY) as server:
        client = sms_client(http, server)
        server.stop()

        with pytest.raises(TransientFailure) as failure:
            await client.send(sms())
        assert failure.value.reason == "connection_error"
        assert failure.value.attempts == FAST_RETRIES.max_attempts

        server.start()
        assert isinstance(await client.send(sms()), Accepted)
        assert server.stats()["accepted"] == 1


async def test_rate_limit_holds_across_concurrent_calls(
    http: HttpClient, sms_sim: SimulatorServer
) -> None:
    limited = ResiliencePolicy(retry=FAST_RETRIES, rate_per_second=20, burst=2)
    client = sms_client(http, sms_sim, limited)
    started = time.monotonic()

    outcomes = await asyncio.gather(*(client.send(sms()) for _ in range(8)))

    # Two go at once (the burst); the other six wait 1/20 s each.
    assert time.monotonic() - started >= 6 / 20 - 0.01
    assert all(isinstance(outcome, Accepted) for outcome in outcomes)
    assert sms_sim.stats()["accepted"] == 8


async def test_simulator_accepts_a_message_id_once(
    http: HttpClient, sms_sim: SimulatorServer
) -> None:
    client = sms_client(http, sms_sim)
    message = sms()

    first = await client.send(message)
    second = await client.send(message)

    assert isinstance(first, Accepted)
    assert isinstance(second, Accepted)
    assert isinstance(second.body, dict) and second.body["duplicate"] is True
    assert sms_sim.stats() == {
        "accepted": 1,
        "duplicate": 1,
        "failed": 0,
        "unauthorized": 0,
        "invalid": 0,
        "total": 2,
    }


async def test_failures_can_target_some_seats(
    http: HttpClient, venue_sim: SimulatorServer
) -> None:
    venue_sim.behave(mode="error", status=409, code="SEAT_TAKEN", for_seats=[13])
    client = venue_client(http, venue_sim)

    refused = await client.register(registration(seat_no=13))
    taken = await client.register(registration(seat_no=14))

    assert isinstance(refused, Rejected)
    assert refused.code == "SEAT_TAKEN"
    assert isinstance(taken, Accepted)
    assert taken.status == 201
    body = venue_sim.calls()[1].body
    assert isinstance(body, dict)
    assert set(body) == {
        "registration_id",
        "ticket_id",
        "concert_title",
        "schedule_id",
        "starts_at",
        "seat_no",
        "holder",
    }


async def test_failures_can_target_some_recipients(
    http: HttpClient, kakao_sim: SimulatorServer
) -> None:
    kakao_sim.behave(mode="error", status=400, code="NOT_KAKAO_USER", for_recipients=["010-0"])
    client = kakao_client(http, kakao_sim)

    assert isinstance(await client.send(alimtalk(recipient="010-0")), Rejected)
    assert isinstance(await client.send(alimtalk(recipient="010-1")), Accepted)


async def test_control_endpoints_switch_and_report_over_http(
    http: HttpClient, kakao_sim: SimulatorServer
) -> None:
    async with httpx.AsyncClient(base_url=kakao_sim.base_url) as control:
        switched = await control.put("/_sim/behaviour", json={"mode": "error", "status": 502, "times": 1})
        assert switched.status_code == 200
        bad = await control.put("/_sim/behaviour", json={"mode": "sometimes"})
        assert bad.status_code == 422

        assert isinstance(await kakao_client(http, kakao_sim).send(alimtalk()), Accepted)

        stats = (await control.get("/_sim/stats")).json()
        assert (stats["failed"], stats["accepted"]) == (1, 1)
        calls = (await control.get("/_sim/calls")).json()["items"]
        assert [call["status"] for call in calls] == [502, 200]
        assert (await control.delete("/_sim/calls")).status_code == 204
        assert (await control.get("/_sim/stats")).json()["total"] == 0
