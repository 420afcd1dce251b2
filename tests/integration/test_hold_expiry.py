"""Holds that run out (HOLD_TTL_SECONDS=1) give their seats back, and cannot be paid or cancelled."""

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from services.booking.config import Settings
from tests.support import (
    Booking,
    assert_problem,
    auth,
    eventually,
    new_user,
    queue_worker,
    serve_api,
    sql,
)

pytestmark = pytest.mark.integration

TTL = 1


@pytest.fixture(scope="module")
async def quick(settings: Settings) -> AsyncIterator[Booking]:
    """An API whose holds last one second (and its own queue, admitting everyone)."""
    short = settings.model_copy(update={
        "hold_ttl_seconds": TTL, "queue_namespace": "x" + uuid.uuid4().hex[:12]})
    async with serve_api(short) as url, queue_worker(short), httpx.AsyncClient(
        base_url=url, timeout=30
    ) as http:
        yield Booking(http)


async def _seats(booking: Booking, schedule_id: str) -> dict[int, str]:
    response = await booking.http.get(f"/schedules/{schedule_id}/seats")
    assert response.status_code == 200, response.text
    return {seat["seat_no"]: seat["status"] for seat in response.json()["items"]}


async def _available(booking: Booking, concert_id: str) -> int:
    response = await booking.http.get(f"/concerts/{concert_id}/schedules")
    return int(response.json()["items"][0]["available_seats"])


async def _status(booking: Booking, user: str, reservation_id: str) -> str:
    response = await booking.http.get(f"/reservations/{reservation_id}", headers=auth(user))
    assert response.status_code == 200, response.text
    return str(response.json()["status"])


async def _until_expired(reservation: dict[str, str]) -> None:
    """Wait until the API's clock (this process's: it runs in it) reaches the hold's expiry."""
    expiry = datetime.fromisoformat(reservation["expires_at"])
    while True:
        left = (expiry - datetime.now(UTC)).total_seconds()
        if left <= 0:
            return
        await asyncio.sleep(left)  # the event loop's clock is not this one: look again


async def _player(booking: Booking, concert: dict[str, Any], points: int = 0) -> tuple[str, str]:
    user = new_user("ttl")
    if points:
        await booking.charge(user, points)
    return user, await booking.active_token(user, concert)


async def test_an_expired_hold_frees_its_seat_for_someone_else(quick: Booking) -> None:
    concert = await quick.create_concert(seat_count=3, price=2_000)
    concert_id, schedule_id = concert["id"], concert["schedules"][0]["id"]
    alice, alice_token = await _player(quick, concert, points=10_000)
    bob, bob_token = await _player(quick, concert, points=10_000)
    assert await _available(quick, concert_id) == 3

    before = datetime.now(UTC)
    held = await quick.hold(alice, alice_token, schedule_id, 1)
    after = datetime.now(UTC)
    assert held.status_code == 201, held.text
    reservation = held.json()
    # Taken at some moment of the request, by the clock this test reads: it lasts TTL from then.
    taken_at = datetime.fromisoformat(reservation["expires_at"]) - timedelta(seconds=TTL)
    assert before <= taken_at <= after
    assert (await _seats(quick, schedule_id))[1] == "HELD"
    assert await _available(quick, concert_id) == 2
    assert_problem(await quick.hold(bob, bob_token, schedule_id, 1), 409, "SEAT_UNAVAILABLE")

    await _until_expired(reservation)
    # Nobody asked for it: the seat is simply available again.
    assert await _seats(quick, schedule_id) == {1: "AVAILABLE", 2: "AVAILABLE", 3: "AVAILABLE"}
    assert await _available(quick, concert_id) == 3
    assert await _status(quick, alice, reservation["id"]) == "EXPIRED"

    taken = await quick.hold(bob, bob_token, schedule_id, 1)
    assert taken.status_code == 201, taken.text
    assert (await _seats(quick, schedule_id))[1] == "HELD"
    assert await _available(quick, concert_id) == 2
    # The old hold stays EXPIRED however the seat moves on.
    assert await _status(quick, alice, reservation["id"]) == "EXPIRED"
    paid = await quick.pay(bob, bob_token, taken.json()["id"])
    assert paid.status_code == 201, paid.text
    assert (await _seats(quick, schedule_id))[1] == "SOLD"
    assert await _available(quick, concert_id) == 2
    await _until_expired(taken.json())  # a paid hold's expiry changes nothing
    assert (await _seats(quick, schedule_id))[1] == "SOLD"
    assert await _status(quick, bob, taken.json()["id"]) == "PAID"
    assert await _status(quick, alice, reservation["id"]) == "EXPIRED"


async def test_the_queue_worker_records_an_expired_hold_and_frees_its_seat_row(
    quick: Booking, settings: Settings
) -> None:
    concert = await quick.create_concert(seat_count=1, price=1_000)
    schedule_id = concert["schedules"][0]["id"]
    alice, alice_token = await _player(quick, concert)
    held = await quick.hold(alice, alice_token, schedule_id, 1)
    assert held.status_code == 201, held.text
    reservation_id = held.json()["id"]
    stored = ("SELECT r.status AS hold, s.status AS seat, s.reservation_id FROM reservations r"
              " JOIN seats s ON s.schedule_id = r.schedule_id AND s.seat_no = r.seat_no WHERE r.id = :id")
    assert await sql(settings, stored, id=reservation_id) == [
        {"hold": "HELD", "seat": "HELD", "reservation_id": uuid.UUID(reservation_id)}]

    await _until_expired(held.json())
    # The rows change only when the worker's sweep (every second) writes them: readers
    # already answer EXPIRED, so only the tables show the sweep did its work.
    async def swept() -> bool:
        return (await sql(settings, stored, id=reservation_id))[0]["hold"] != "HELD"

    await eventually(swept, 30, "the sweep recorded the hold")
    assert await sql(settings, stored, id=reservation_id) == [
        {"hold": "EXPIRED", "seat": "AVAILABLE", "reservation_id": None}]


async def test_an_expired_hold_cannot_be_paid(quick: Booking, settings: Settings) -> None:
    concert = await quick.create_concert(seat_count=2, price=3_000)
    schedule_id = concert["schedules"][0]["id"]
    alice, alice_token = await _player(quick, concert, points=10_000)
    bob, bob_token = await _player(quick, concert)
    lonely = (await quick.hold(alice, alice_token, schedule_id, 1)).json()
    retaken = (await quick.hold(alice, alice_token, schedule_id, 2)).json()
    await _until_expired(retaken)
    assert (await quick.hold(bob, bob_token, schedule_id, 2)).status_code == 201

    # Whether or not someone else took the seat since, the expired hold is gone.
    for reservation in (lonely, retaken):
        assert_problem(await quick.pay(alice, alice_token, reservation["id"]), 410, "RESERVATION_EXPIRED")
    assert (await quick.http.get("/points", headers=auth(alice))).json()["balance"] == 10_000
    history = (await quick.http.get("/points/history", headers=auth(alice))).json()["items"]
    assert [item["type"] for item in history] == ["CHARGE"]
    assert await sql(settings, "SELECT id FROM payments WHERE user_id = :u", u=alice) == []
    assert (await quick.http.get("/tickets", headers=auth(alice))).json()["items"] == []
    assert await _seats(quick, schedule_id) == {1: "AVAILABLE", 2: "HELD"}
    # A refused payment does not spend the queue token.
    me = await quick.http.get("/queue/tokens/me", headers=quick.guarded(alice, alice_token))
    assert me.json()["status"] == "ACTIVE"


async def test_an_expired_hold_cannot_be_cancelled(quick: Booking) -> None:
    concert = await quick.create_concert(seat_count=2)
    schedule_id = concert["schedules"][0]["id"]
    alice, alice_token = await _player(quick, concert)
    bob, bob_token = await _player(quick, concert)
    reservation = (await quick.hold(alice, alice_token, schedule_id, 1)).json()
    await _until_expired(reservation)
    path = f"/reservations/{reservation['id']}"
    assert_problem(await quick.http.delete(path, headers=quick.guarded(alice, alice_token)),
                   409, "RESERVATION_NOT_HELD")
    assert await _status(quick, alice, reservation["id"]) == "EXPIRED"

    # Nor, once someone else holds the seat, can cancelling it take the seat from them.
    assert (await quick.hold(bob, bob_token, schedule_id, 1)).status_code == 201
    assert_problem(await quick.http.delete(path, headers=quick.guarded(alice, alice_token)),
                   409, "RESERVATION_NOT_HELD")
    assert (await _seats(quick, schedule_id))[1] == "HELD"


async def test_expired_holds_no_longer_count_against_the_limit(quick: Booking) -> None:
    concert = await quick.create_concert(seat_count=10)
    concert_id, schedule_id = concert["id"], concert["schedules"][0]["id"]
    alice, alice_token = await _player(quick, concert)
    held = [(await quick.hold(alice, alice_token, schedule_id, seat)).json() for seat in range(1, 5)]
    assert_problem(await quick.hold(alice, alice_token, schedule_id, 5), 409, "HOLD_LIMIT_REACHED")
    assert await _available(quick, concert_id) == 6
    await _until_expired(held[-1])
    assert await _available(quick, concert_id) == 10
    again = [await quick.hold(alice, alice_token, schedule_id, seat) for seat in range(5, 9)]
    assert [r.status_code for r in again] == [201] * 4
    assert await _available(quick, concert_id) == 6
    assert [await _status(quick, alice, r["id"]) for r in held] == ["EXPIRED"] * 4


async def test_the_seat_map_and_counts_agree_while_holds_come_and_go(
    booking: Booking, settings: Settings
) -> None:
    concert = await booking.create_concert(seat_count=6)
    concert_id, schedule_id = concert["id"], concert["schedules"][0]["id"]
    players = [await _player(booking, concert) for _ in range(3)]
    held = [(await booking.hold(user, queue_token, schedule_id, seat)).json()
            for seat, (user, queue_token) in enumerate(players, start=1)]
    # The suite's holds last minutes: the test runs them out one at a time by moving each
    # one's expiry to now, so every step lasts as long as the reads take, and both reads
    # come a moment after an expiry, where a view that lagged the other would show it.
    for expired, reservation in enumerate([None, *held]):
        if reservation is not None:
            await sql(settings, "WITH r AS (UPDATE reservations SET expires_at = :now WHERE id = :id)"
                      " UPDATE seats SET held_until = :now WHERE reservation_id = :id",
                      id=reservation["id"], now=datetime.now(UTC))
        seats, available = await asyncio.gather(_seats(booking, schedule_id),
                                                _available(booking, concert_id))
        free = [seat for seat, status in seats.items() if status == "AVAILABLE"]
        assert free == [*range(1, expired + 1), 4, 5, 6], seats
        assert available == 3 + expired, (seats, available)
