"""The guarantees under real concurrency: hundreds of parallel requests, real servers."""

import asyncio
import random
import statistics
import time
import uuid
from collections import Counter
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from services.booking.config import Settings
from tests.support import Booking, assert_problem, auth, new_user, queue_worker, serve_api

pytestmark = pytest.mark.integration


async def _ready_users(booking: Booking, concert: dict[str, Any], count: int,
                       points: int) -> list[tuple[str, str]]:
    users = [new_user("r") for _ in range(count)]
    if points:
        await asyncio.gather(*(booking.charge(user, points) for user in users))
    tokens = await asyncio.gather(*(booking.active_token(user, concert) for user in users))
    return list(zip(users, tokens, strict=True))


async def _one_seat_race(booking: Booking, contenders: int) -> Counter[tuple[int, str]]:
    concert = await booking.create_concert(seat_count=1)
    schedule_id = concert["schedules"][0]["id"]
    users = await _ready_users(booking, concert, contenders, 0)
    responses = await asyncio.gather(
        *(booking.hold(user, token, schedule_id, 1) for user, token in users)
    )
    return Counter((r.status_code, r.json().get("code", "")) for r in responses)


async def test_three_hundred_holds_on_one_seat_make_one_hold(booking: Booking) -> None:
    outcome = await _one_seat_race(booking, 300)
    assert outcome == Counter({(201, ""): 1, (409, "SEAT_UNAVAILABLE"): 299})


async def test_the_database_alone_holds_the_line_without_redis_locks(settings: Settings) -> None:
    unlocked = settings.model_copy(update={"redis_locks_enabled": False})
    async with serve_api(unlocked) as url, queue_worker(unlocked), httpx.AsyncClient(
        base_url=url, timeout=60, limits=httpx.Limits(max_connections=500)
    ) as http:
        outcome = await _one_seat_race(Booking(http), 300)
    assert outcome == Counter({(201, ""): 1, (409, "SEAT_UNAVAILABLE"): 299})


async def _hold_and_pay(booking: Booking, user: str, token: str, schedule_id: str,
                        seats: int, pay_seconds: list[float]) -> list[int]:
    held = await booking.hold(user, token, schedule_id, random.randint(1, seats))
    if held.status_code != 201:
        return [held.status_code]
    started = time.perf_counter()
    paid = await booking.pay(user, token, held.json()["id"])
    pay_seconds.append(time.perf_counter() - started)
    return [held.status_code, paid.status_code]


async def test_a_thousand_users_rush_fifty_seats(booking: Booking, settings: Settings) -> None:
    concert = await booking.create_concert(seat_count=50, price=7_000)
    schedule_id = concert["schedules"][0]["id"]
    users = await _ready_users(booking, concert, 1000, 10_000)

    pay_seconds: list[float] = []
    started = time.perf_counter()
    statuses = await asyncio.gather(
        *(_hold_and_pay(booking, user, token, schedule_id, 50, pay_seconds) for user, token in users)
    )
    rush_seconds = time.perf_counter() - started
    p95 = statistics.quantiles(pay_seconds, n=20)[-1] if len(pay_seconds) > 1 else 0.0
    print(f"rush: {len(users)} users in {rush_seconds:.2f} s, payment p95 {p95 * 1000:.0f} ms")

    flat = Counter(code for codes in statuses for code in codes)
    assert not [code for code in flat if code >= 500], flat
    assert flat[201] == 100, flat  # 50 holds and 50 payments
    engine = create_async_engine(settings.database_dsn)
    try:
        async with engine.connect() as conn:
            sold = (await conn.execute(text(
                "SELECT count(*) FROM seats WHERE schedule_id = :s AND status = 'SOLD'"),
                {"s": schedule_id})).scalar_one()
            tickets = (await conn.execute(text(
                "SELECT count(*) FROM tickets WHERE schedule_id = :s AND status <> 'VOID'"),
                {"s": schedule_id})).scalar_one()
            ids = [user for user, _ in users]
            wrong = (await conn.execute(text("""
                SELECT w.user_id FROM wallets w
                 WHERE w.user_id = ANY(:ids)
                   AND w.balance <> 10000 - (SELECT coalesce(sum(p.amount), 0) FROM payments p
                                              WHERE p.user_id = w.user_id AND p.status = 'PAID')
            """), {"ids": ids})).all()
            paid = (await conn.execute(text(
                "SELECT count(*) FROM payments WHERE user_id = ANY(:ids)"), {"ids": ids})).scalar_one()
    finally:
        await engine.dispose()
    assert (sold, tickets, paid) == (50, 50, 50)
    assert wrong == []


async def _held_reservation(booking: Booking, price: int = 5_000) -> tuple[str, str, str]:
    concert = await booking.create_concert(seat_count=5, price=price)
    user = new_user("p")
    await booking.charge(user, 20_000)
    token = await booking.active_token(user, concert)
    held = await booking.hold(user, token, concert["schedules"][0]["id"], 1)
    assert held.status_code == 201
    return user, token, held.json()["id"]


async def test_one_key_twenty_times_pays_once_with_identical_answers(booking: Booking) -> None:
    user, token, reservation_id = await _held_reservation(booking)
    key = uuid.uuid4().hex
    responses = await asyncio.gather(
        *(booking.pay(user, token, reservation_id, key=key) for _ in range(20))
    )
    assert {r.status_code for r in responses} == {201}
    assert len({r.content for r in responses}) == 1
    balance = (await booking.http.get("/points", headers=auth(user))).json()["balance"]
    assert balance == 15_000
    history = (await booking.http.get("/points/history", headers=auth(user))).json()["items"]
    assert [h["type"] for h in history] == ["USE", "CHARGE"]


async def test_twenty_keys_pay_once_and_the_rest_are_already_paid(booking: Booking) -> None:
    user, token, reservation_id = await _held_reservation(booking)
    responses = await asyncio.gather(
        *(booking.pay(user, token, reservation_id) for _ in range(20))
    )
    outcome = Counter((r.status_code, r.json().get("code", "")) for r in responses)
    # The first payment expires the queue token, so a loser may be turned away by the
    # guard instead; either way exactly one payment exists.
    assert outcome[(201, "")] == 1
    assert set(outcome) <= {(201, ""), (409, "ALREADY_PAID"), (401, "QUEUE_TOKEN_INVALID")}
    assert (await booking.http.get("/points", headers=auth(user))).json()["balance"] == 15_000


async def test_payments_in_opposite_order_never_deadlock(booking: Booking) -> None:
    concert = await booking.create_concert(seat_count=200, price=1_000)
    schedule_id = concert["schedules"][0]["id"]
    users = await _ready_users(booking, concert, 50, 10_000)
    pairs = []
    for index, (user, token) in enumerate(users):
        first = await booking.hold(user, token, schedule_id, 2 * index + 1)
        second = await booking.hold(user, token, schedule_id, 2 * index + 2)
        pairs.append((user, token, first.json()["id"], second.json()["id"]))

    async def pay_both(user: str, token: str, a: str, b: str) -> list[httpx.Response]:
        # Both orders at once on one wallet: the fixed lock order must serialise them.
        return list(await asyncio.gather(booking.pay(user, token, a), booking.pay(user, token, b)))

    outcomes = await asyncio.gather(*(
        pay_both(u, t, a, b) if i % 2 else pay_both(u, t, b, a)
        for i, (u, t, a, b) in enumerate(pairs)
    ))
    for (user, *_), responses in zip(pairs, outcomes, strict=True):
        await _assert_wallet_moved_by(booking, user, 10_000, responses)


async def _assert_wallet_moved_by(booking: Booking, user: str, charged: int,
                                  responses: list[httpx.Response]) -> None:
    """The wallet's history and balance account for exactly the payments that answered 201."""
    paid = [r.json()["amount"] for r in responses if r.status_code == 201]
    # The first payment expires the queue token: the other may be turned away by the guard.
    refused = [assert_problem(r, 401, "QUEUE_TOKEN_INVALID") for r in responses if r.status_code != 201]
    assert paid and len(paid) + len(refused) == len(responses)
    movements = (await booking.http.get("/points/history", headers=auth(user))).json()["items"]
    oldest_first = movements[::-1]
    assert [(m["type"], m["amount"]) for m in oldest_first] == (
        [("CHARGE", charged)] + [("USE", amount) for amount in paid])
    running = 0
    for movement in oldest_first:
        running += movement["amount"] if movement["type"] == "CHARGE" else -movement["amount"]
        assert movement["balance_after"] == running, oldest_first  # no update lost
    balance = (await booking.http.get("/points", headers=auth(user))).json()["balance"]
    assert balance == charged - sum(paid)
