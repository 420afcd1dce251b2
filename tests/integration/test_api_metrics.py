"""The API's /metrics: requests, database pool waits, Redis round trips, seat-lock contention."""

import asyncio

import httpx
import pytest
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families
from redis.asyncio import Redis

from services.booking.adapters.database import create_engine
from services.booking.adapters.seat_locks import SeatLocks
from services.booking.config import Settings
from tests.support import Booking, assert_problem, new_user

pytestmark = pytest.mark.integration


async def scrape(metrics_http: httpx.AsyncClient) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    response = await metrics_http.get("/metrics")
    assert response.status_code == 200, response.text
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def value(samples: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


async def test_a_booking_shows_in_requests_redis_round_trips_and_pool_waits(
    booking: Booking, metrics_http: httpx.AsyncClient,
) -> None:
    concert = await booking.create_concert(seat_count=2)
    schedule_id = concert["schedules"][0]["id"]
    before = await scrape(metrics_http)
    user = new_user()
    await booking.charge(user, 50_000)
    queue_token = await booking.active_token(user, concert)
    held = await booking.hold(user, queue_token, schedule_id, 1)
    assert held.status_code == 201, held.text
    paid = await booking.pay(user, queue_token, held.json()["id"])
    assert paid.status_code == 201, paid.text
    after = await scrape(metrics_http)

    def grew(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert grew("http_requests_total", method="POST", route="/payments", status="201") == 1
    assert grew("http_request_duration_seconds_count", method="POST", route="/reservations") == 1
    assert grew("redis_operation_duration_seconds_count", operation="queue_issue") == 1
    assert grew("redis_operation_duration_seconds_count", operation="seat_lock_acquire") == 1
    assert grew("redis_operation_duration_seconds_count", operation="seat_lock_release") == 1
    assert grew("redis_operation_duration_seconds_count", operation="queue_expire") == 1
    # The guard of the hold and of the payment, and at least one poll of the line.
    assert grew("redis_operation_duration_seconds_count", operation="queue_status") >= 2
    assert grew("seat_lock_attempts_total", outcome="acquired") == 1
    # charge, hold and pay each take a connection at least once.
    assert grew("db_pool_wait_seconds_count") >= 3
    assert value(after, "db_pool_waiting") == 0


async def test_a_seat_lock_held_elsewhere_counts_as_contended(
    booking: Booking, settings: Settings, metrics_http: httpx.AsyncClient
) -> None:
    concert = await booking.create_concert(seat_count=1)
    schedule_id = concert["schedules"][0]["id"]
    user = new_user()
    queue_token = await booking.active_token(user, concert)
    redis = Redis.from_url(str(settings.redis_url), decode_responses=True)
    try:
        # Another API process is in the middle of taking this seat.
        await redis.set(SeatLocks.key(schedule_id, 1), "someone-else", px=10_000)
        before = await scrape(metrics_http)
        assert_problem(await booking.hold(user, queue_token, schedule_id, 1), 409, "SEAT_UNAVAILABLE")
        after = await scrape(metrics_http)
    finally:
        await redis.delete(SeatLocks.key(schedule_id, 1))
        await redis.aclose()
    assert value(after, "seat_lock_attempts_total", outcome="contended") - value(
        before, "seat_lock_attempts_total", outcome="contended") == 1
    assert value(after, "seat_lock_attempts_total", outcome="acquired") == value(
        before, "seat_lock_attempts_total", outcome="acquired")


async def test_requests_waiting_for_a_connection_are_counted_while_they_wait(settings: Settings) -> None:
    engine = create_engine(settings.model_copy(update={"db_pool_size": 1, "db_pool_overflow": 0}))

    def waiting() -> float:
        return REGISTRY.get_sample_value("db_pool_waiting") or 0.0

    def waits() -> tuple[float, float]:
        count = REGISTRY.get_sample_value("db_pool_wait_seconds_count") or 0.0
        total = REGISTRY.get_sample_value("db_pool_wait_seconds_sum") or 0.0
        return count, total

    try:
        async with engine.connect() as first:
            await first.exec_driver_sql("SELECT 1")
            waiting_before, (count_before, sum_before) = waiting(), waits()

            async def second() -> None:
                async with engine.connect() as conn:
                    await conn.exec_driver_sql("SELECT 1")

            task = asyncio.create_task(second())
            await asyncio.sleep(0.3)
            assert not task.done()
            assert waiting() == waiting_before + 1
        await asyncio.wait_for(task, 5)
    finally:
        await engine.dispose()
    count_after, sum_after = waits()
    assert waiting() == waiting_before
    # At least ours: the queue worker in this process may take a connection meanwhile.
    assert count_after >= count_before + 1
    assert sum_after - sum_before >= 0.3


async def test_metrics_are_not_on_the_public_port(booking: Booking, metrics_http: httpx.AsyncClient) -> None:
    assert_problem(await booking.http.get("/metrics"), 404, "NOT_FOUND")
    assert (await metrics_http.get("/metrics")).status_code == 200
    assert (await metrics_http.get("/anything-else")).status_code == 404
    assert (await metrics_http.post("/metrics")).status_code == 405
