"""Every error code of API.md, with its status and an RFC 9457 body, against the real API."""

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from services.booking.config import Settings
from tests.support import (
    Booking,
    assert_problem,
    auth,
    free_port,
    new_user,
    queue_worker,
    serve_api,
    sql,
)

pytestmark = pytest.mark.integration


async def _ready(booking: Booking, points: int = 0, seats: int = 10, price: int = 10_000,
                 schedules: int = 1) -> tuple[str, str, dict[str, Any]]:
    """A user with `points`, an ACTIVE queue token and a fresh concert."""
    concert = await booking.create_concert(seat_count=seats, price=price, schedules=schedules)
    user = new_user("err")
    if points:
        await booking.charge(user, points)
    return user, await booking.active_token(user, concert), concert


async def _balance(booking: Booking, user: str) -> int:
    return int((await booking.http.get("/points", headers=auth(user))).json()["balance"])


async def _history(booking: Booking, user: str) -> list[tuple[str, int]]:
    items = (await booking.http.get("/points/history", headers=auth(user))).json()["items"]
    return [(item["type"], item["amount"]) for item in items]


async def _seat(booking: Booking, schedule_id: str, seat_no: int) -> str:
    seats = (await booking.http.get(f"/schedules/{schedule_id}/seats")).json()["items"]
    return str({seat["seat_no"]: seat["status"] for seat in seats}[seat_no])


async def test_unauthenticated_401(booking: Booking) -> None:
    for headers in ({}, {"Authorization": "Bearer nonsense"}, {"Authorization": "Basic dTpw"}):
        response = await booking.http.get("/points", headers=headers)
        assert_problem(response, 401, "UNAUTHENTICATED")
        assert response.headers["www-authenticate"].startswith("Bearer")


async def test_forbidden_403(booking: Booking) -> None:
    body = {"title": "Not mine", "venue": "Hall", "schedules": [
        {"starts_at": "2027-01-01T19:00:00+09:00", "seat_count": 1, "price": 1}]}
    response = await booking.http.post("/admin/concerts", json=body, headers=auth(new_user()))
    assert_problem(response, 403, "FORBIDDEN")


async def test_not_found_404(booking: Booking) -> None:
    user, token, concert = await _ready(booking, seats=10)
    schedule_id = concert["schedules"][0]["id"]
    unknown = str(uuid.uuid4())
    assert_problem(await booking.http.get(f"/concerts/{unknown}/schedules"), 404, "NOT_FOUND")
    assert_problem(await booking.http.get(f"/schedules/{unknown}/seats"), 404, "NOT_FOUND")
    assert_problem(await booking.hold(user, token, unknown, 1), 404, "NOT_FOUND")
    assert_problem(await booking.hold(user, token, schedule_id, 11), 404, "NOT_FOUND")
    assert_problem(await booking.http.get(f"/reservations/{unknown}", headers=auth(user)),
                   404, "NOT_FOUND")
    assert_problem(await booking.http.get(f"/payments/{unknown}", headers=auth(user)),
                   404, "NOT_FOUND")
    assert_problem(await booking.pay(user, token, unknown), 404, "NOT_FOUND")
    assert_problem(await booking.http.delete(f"/reservations/{unknown}",
                                             headers=booking.guarded(user, token)), 404, "NOT_FOUND")


async def test_seat_unavailable_409(booking: Booking) -> None:
    first, first_token, concert = await _ready(booking)
    schedule_id = concert["schedules"][0]["id"]
    second = new_user("err")
    second_token = await booking.active_token(second, concert)
    assert (await booking.hold(first, first_token, schedule_id, 1)).status_code == 201
    assert_problem(await booking.hold(second, second_token, schedule_id, 1), 409, "SEAT_UNAVAILABLE")
    # Holding one's own held seat again is no different.
    assert_problem(await booking.hold(first, first_token, schedule_id, 1), 409, "SEAT_UNAVAILABLE")


async def test_hold_limit_reached_409_on_the_fifth_hold_of_one_schedule(booking: Booking) -> None:
    user, token, concert = await _ready(booking, seats=10, schedules=2)
    first, other = (schedule["id"] for schedule in concert["schedules"])
    held = [await booking.hold(user, token, first, seat) for seat in range(1, 5)]
    assert [r.status_code for r in held] == [201] * 4
    assert_problem(await booking.hold(user, token, first, 5), 409, "HOLD_LIMIT_REACHED")
    assert await _seat(booking, first, 5) == "AVAILABLE"
    # The limit counts per schedule, and a cancelled hold no longer counts.
    assert (await booking.hold(user, token, other, 1)).status_code == 201
    cancelled = await booking.http.delete(f"/reservations/{held[0].json()['id']}",
                                          headers=booking.guarded(user, token))
    assert cancelled.status_code == 204
    assert (await booking.hold(user, token, first, 5)).status_code == 201


async def test_hold_limit_holds_under_parallel_requests(booking: Booking) -> None:
    user, token, concert = await _ready(booking, seats=20)
    schedule_id = concert["schedules"][0]["id"]
    responses = await asyncio.gather(
        *(booking.hold(user, token, schedule_id, seat) for seat in range(1, 13))
    )
    codes = sorted((r.status_code, r.json().get("code", "")) for r in responses)
    assert codes == [(201, "")] * 4 + [(409, "HOLD_LIMIT_REACHED")] * 8


async def test_reservation_not_held_409_when_cancelled_twice(booking: Booking) -> None:
    user, token, concert = await _ready(booking)
    schedule_id = concert["schedules"][0]["id"]
    reservation = (await booking.hold(user, token, schedule_id, 2)).json()
    path = f"/reservations/{reservation['id']}"
    first = await booking.http.delete(path, headers=booking.guarded(user, token))
    assert first.status_code == 204 and first.content == b""
    assert await _seat(booking, schedule_id, 2) == "AVAILABLE"
    assert_problem(await booking.http.delete(path, headers=booking.guarded(user, token)),
                   409, "RESERVATION_NOT_HELD")
    assert (await booking.http.get(path, headers=auth(user))).json()["status"] == "CANCELLED"
    # A cancelled reservation cannot be paid either.
    refused = await booking.pay(user, token, reservation["id"])
    assert refused.status_code == 409 and refused.json()["code"] == "RESERVATION_NOT_HELD"


async def test_reservation_expired_410(settings: Settings) -> None:
    quick = settings.model_copy(update={
        "hold_ttl_seconds": 1, "queue_namespace": "x" + uuid.uuid4().hex[:12]})
    async with serve_api(quick) as url, queue_worker(quick), httpx.AsyncClient(base_url=url) as http:
        booking = Booking(http)
        user, token, concert = await _ready(booking, points=50_000)
        schedule_id = concert["schedules"][0]["id"]
        reservation = (await booking.hold(user, token, schedule_id, 1)).json()
        await asyncio.sleep(1.1)
        assert_problem(await booking.pay(user, token, reservation["id"]), 410, "RESERVATION_EXPIRED")
        assert await _balance(booking, user) == 50_000
        assert await _history(booking, user) == [("CHARGE", 50_000)]
        assert await _seat(booking, schedule_id, 1) == "AVAILABLE"


async def test_already_paid_409(booking: Booking) -> None:
    user, token, concert = await _ready(booking, points=30_000)
    reservation = (await booking.hold(user, token, concert["schedules"][0]["id"], 1)).json()
    assert (await booking.pay(user, token, reservation["id"])).status_code == 201
    # The payment expired the token; a fresh one gets past the guard to the rule.
    fresh = await booking.active_token(user, concert)
    assert fresh != token
    assert_problem(await booking.pay(user, fresh, reservation["id"]), 409, "ALREADY_PAID")
    assert await _balance(booking, user) == 20_000
    assert_problem(await booking.http.delete(f"/reservations/{reservation['id']}",
                                             headers=booking.guarded(user, fresh)),
                   409, "RESERVATION_NOT_HELD")


async def test_insufficient_points_402_takes_nothing(booking: Booking, settings: Settings) -> None:
    user, token, concert = await _ready(booking, points=9_999, price=10_000)
    schedule_id = concert["schedules"][0]["id"]
    reservation = (await booking.hold(user, token, schedule_id, 1)).json()
    assert_problem(await booking.pay(user, token, reservation["id"]), 402, "INSUFFICIENT_POINTS")
    assert await _balance(booking, user) == 9_999
    assert await _history(booking, user) == [("CHARGE", 9_999)]
    assert await _seat(booking, schedule_id, 1) == "HELD"
    got = await booking.http.get(f"/reservations/{reservation['id']}", headers=auth(user))
    assert got.json()["status"] == "HELD"
    assert (await booking.http.get("/tickets", headers=auth(user))).json()["items"] == []
    assert await sql(settings, "SELECT id FROM payments WHERE user_id = :u", u=user) == []
    assert await _token_expiries(settings, user) == []
    # The token is still live: one more point and the same hold can be paid.
    await booking.charge(user, 1)
    paid = await booking.pay(user, token, reservation["id"])
    assert paid.status_code == 201
    assert await _balance(booking, user) == 0
    # The payment recorded its spent token in its transaction, one row, left for the
    # sweeper (none runs here); its only outbox row is the PaymentCompleted.
    assert await _token_expiries(settings, user) == [
        {"token": token, "payment_id": uuid.UUID(paid.json()["id"]), "swept_at": None}]
    outbox = await sql(settings, "SELECT event_type FROM outbox WHERE payload->>'user_id' = :u",
                       u=user)
    assert outbox == [{"event_type": "PaymentCompleted"}]


async def _token_expiries(settings: Settings, user: str) -> list[dict[str, Any]]:
    return await sql(settings, "SELECT token, payment_id, swept_at FROM queue_token_expiries"
                               " WHERE user_id = :u", u=user)


async def test_balance_limit_exceeded_409(booking: Booking) -> None:
    user = new_user("rich")
    for _ in range(10):
        await booking.charge(user, 10_000_000)
    assert await _balance(booking, user) == 100_000_000
    refused = await booking.http.post("/points/charge", json={"amount": 1}, headers=auth(user))
    assert_problem(refused, 409, "BALANCE_LIMIT_EXCEEDED")
    assert await _balance(booking, user) == 100_000_000
    assert len(await _history(booking, user)) == 10


async def test_idempotency_key_required_400(booking: Booking) -> None:
    user, token, concert = await _ready(booking, points=20_000)
    reservation = (await booking.hold(user, token, concert["schedules"][0]["id"], 1)).json()
    response = await booking.http.post("/payments", json={"reservation_id": reservation["id"]},
                                       headers=booking.guarded(user, token))
    assert_problem(response, 400, "IDEMPOTENCY_KEY_REQUIRED")
    assert await _balance(booking, user) == 20_000
    # Checked before the queue token: no token, no key is still a missing key.
    response = await booking.http.post("/payments", json={"reservation_id": reservation["id"]},
                                       headers=auth(user))
    assert_problem(response, 400, "IDEMPOTENCY_KEY_REQUIRED")


async def test_idempotency_key_reused_422_with_another_body(booking: Booking) -> None:
    user, token, concert = await _ready(booking, points=50_000)
    schedule_id = concert["schedules"][0]["id"]
    first = (await booking.hold(user, token, schedule_id, 1)).json()
    second = (await booking.hold(user, token, schedule_id, 2)).json()
    key = uuid.uuid4().hex
    refused = await booking.pay(user, token, str(uuid.uuid4()), key=key)
    assert refused.status_code == 404
    assert_problem(await booking.pay(user, token, first["id"], key=key), 422, "IDEMPOTENCY_KEY_REUSED")
    assert await _balance(booking, user) == 50_000
    paid = await booking.pay(user, token, second["id"], key=uuid.uuid4().hex)
    assert paid.status_code == 201

    charge_key = {"Idempotency-Key": uuid.uuid4().hex}
    ok = await booking.http.post("/points/charge", json={"amount": 5},
                                 headers={**auth(user), **charge_key})
    assert ok.status_code == 200
    reused = await booking.http.post("/points/charge", json={"amount": 6},
                                     headers={**auth(user), **charge_key})
    assert_problem(reused, 422, "IDEMPOTENCY_KEY_REUSED")
    assert await _balance(booking, user) == 40_005


# (Control characters other than tab never reach the app: the HTTP server refuses them.)
@pytest.mark.parametrize("key", [b"", b"k" * 129, b"tab\there", b"caf\xc3\xa9", b"\xff"])
async def test_malformed_idempotency_key_422(booking: Booking, key: bytes) -> None:
    user = new_user("key")
    response = await booking.http.post("/points/charge", json={"amount": 10},
                                       headers={**auth(user), "Idempotency-Key": key})
    assert_problem(response, 422, "VALIDATION_FAILED")
    assert await _balance(booking, user) == 0
    response = await booking.http.post("/payments", json={"reservation_id": str(uuid.uuid4())},
                                       headers={**auth(user), "Idempotency-Key": key})
    assert_problem(response, 422, "VALIDATION_FAILED")


async def test_longest_printable_idempotency_key_is_accepted(booking: Booking) -> None:
    user = new_user("key")
    key = "".join(chr(c) for c in range(0x21, 0x7F))[:128].ljust(128, "~")
    response = await booking.http.post("/points/charge", json={"amount": 10},
                                       headers={**auth(user), "Idempotency-Key": key})
    assert response.status_code == 200, response.text


async def test_queue_token_invalid_401(booking: Booking) -> None:
    user, token, concert = await _ready(booking, points=10_000)
    _, other_token, _ = await _ready(booking)
    schedule_id = concert["schedules"][0]["id"]
    for headers in (auth(user), booking.guarded(user, "no-such-token"),
                    booking.guarded(user, other_token)):
        hold = await booking.http.post("/reservations",
                                       json={"schedule_id": schedule_id, "seat_no": 1},
                                       headers=headers)
        assert_problem(hold, 401, "QUEUE_TOKEN_INVALID")
    assert await _seat(booking, schedule_id, 1) == "AVAILABLE"
    reservation = (await booking.hold(user, token, schedule_id, 1)).json()
    pay = await booking.http.post("/payments", json={"reservation_id": reservation["id"]},
                                  headers={**auth(user), "Idempotency-Key": uuid.uuid4().hex})
    assert_problem(pay, 401, "QUEUE_TOKEN_INVALID")
    cancel = await booking.http.delete(f"/reservations/{reservation['id']}", headers=auth(user))
    assert_problem(cancel, 401, "QUEUE_TOKEN_INVALID")
    assert await _seat(booking, schedule_id, 1) == "HELD"
    assert await _balance(booking, user) == 10_000


async def test_queue_token_not_active_403(settings: Settings) -> None:
    narrow = settings.model_copy(update={
        "queue_namespace": "x" + uuid.uuid4().hex[:12], "queue_max_active": 1,
        "queue_admit_per_second": 1,
    })
    async with serve_api(narrow) as url, queue_worker(narrow), httpx.AsyncClient(base_url=url) as http:
        booking = Booking(http)
        first, first_token, concert = await _ready(booking, points=10_000)
        schedule_id = concert["schedules"][0]["id"]
        waiting = new_user("wait")
        issued = (await booking.issue(waiting, concert)).json()
        assert issued["status"] == "WAITING" and issued["position"] == 1
        await asyncio.sleep(0.3)  # a few admission rounds: the only slot stays taken
        token = issued["token"]
        hold = await booking.hold(waiting, token, schedule_id, 2)
        assert_problem(hold, 403, "QUEUE_TOKEN_NOT_ACTIVE")
        held = (await booking.hold(first, first_token, schedule_id, 1)).json()
        cancel = await http.delete(f"/reservations/{held['id']}", headers=booking.guarded(waiting, token))
        assert_problem(cancel, 403, "QUEUE_TOKEN_NOT_ACTIVE")
        pay = await booking.pay(waiting, token, str(uuid.uuid4()))
        assert_problem(pay, 403, "QUEUE_TOKEN_NOT_ACTIVE")
        assert await _seat(booking, schedule_id, 2) == "AVAILABLE"


async def test_dependency_unavailable_503_when_redis_is_down(
    booking: Booking, settings: Settings
) -> None:
    user, token, concert = await _ready(booking, points=50_000)
    schedule_id = concert["schedules"][0]["id"]
    held = (await booking.hold(user, token, schedule_id, 1)).json()
    paid_key = uuid.uuid4().hex
    paid = await booking.pay(user, token, held["id"], key=paid_key)
    assert paid.status_code == 201
    token = await booking.active_token(user, concert)
    second = (await booking.hold(user, token, schedule_id, 2)).json()

    broken = settings.model_copy(update={"redis_url": f"redis://127.0.0.1:{free_port()}/0"})
    async with serve_api(broken) as url, httpx.AsyncClient(base_url=url, timeout=30) as http:
        started = time.monotonic()
        key = uuid.uuid4().hex
        calls = [
            http.post("/queue/tokens", json={"concert_id": concert["id"]}, headers=auth(user)),
            http.get("/queue/tokens/me", headers=booking.guarded(user, token)),
            http.post("/reservations", json={"schedule_id": schedule_id, "seat_no": 3},
                      headers=booking.guarded(user, token)),
            http.delete(f"/reservations/{second['id']}", headers=booking.guarded(user, token)),
            http.post("/payments", json={"reservation_id": second["id"]},
                      headers=booking.guarded(user, token, **{"Idempotency-Key": key})),
            http.get(f"/concerts/{concert['id']}/waiting-room"),
            http.patch(f"/admin/concerts/{concert['id']}/waiting-room", json={"paused": True},
                       headers=auth("admin-1", role="admin")),
        ]
        for response in await asyncio.gather(*calls):
            assert_problem(response, 503, "DEPENDENCY_UNAVAILABLE")
            assert int(response.headers["retry-after"]) > 0
        assert time.monotonic() - started < 15
        # Reads need no Redis, and a stored payment is replayed before any queue check.
        assert (await http.get(f"/schedules/{schedule_id}/seats")).status_code == 200
        assert (await http.get("/points", headers=auth(user))).json()["balance"] == 40_000
        replayed = await http.post("/payments", json={"reservation_id": held["id"]},
                                   headers=booking.guarded(user, token, **{"Idempotency-Key": paid_key}))
        assert replayed.status_code == 201 and replayed.content == paid.content
        ready = await http.get("/health/ready")
        assert ready.status_code == 503 and ready.json()["checks"]["redis"] != "ok"
        # A concert can still be created; its room reaches Redis with the first token asked.
        late = await http.post("/admin/concerts", headers=auth("admin-1", role="admin"), json={
            "title": "Late", "venue": "Hall", "waiting_room": {"max_active": 3},
            "schedules": [{"starts_at": "2027-01-01T19:00:00+09:00", "seat_count": 1, "price": 1}]})
        assert late.status_code == 201, late.text

    # Nothing was written by the refused requests.
    assert await _seat(booking, schedule_id, 2) == "HELD"
    assert await _seat(booking, schedule_id, 3) == "AVAILABLE"
    assert await _balance(booking, user) == 40_000
    assert await sql(settings, "SELECT key FROM idempotency_keys WHERE user_id = :u AND key = :k",
                     u=user, k=key) == []
    assert (await booking.pay(user, token, second["id"], key=key)).status_code == 201
    # The refused PATCH changed nothing: the room is not paused, and no change was audited.
    room = (await booking.http.get(f"/concerts/{concert['id']}/waiting-room")).json()
    assert room["status"] == "OPEN"
    assert len(await sql(settings, "SELECT id FROM waiting_room_changes WHERE concert_id = :c",
                         c=concert["id"])) == 1  # its creation
    issued = await booking.issue(new_user("late"), late.json()["id"])
    assert issued.status_code == 201 and issued.json()["concert_id"] == late.json()["id"]
    shown = (await booking.http.get(f"/concerts/{late.json()['id']}/waiting-room")).json()
    assert shown["max_active"] == 3 and shown["waiting"] + shown["active"] == 1


async def test_payload_too_large_413(booking: Booking) -> None:
    user = new_user("big")
    body = json.dumps({"amount": 10, "padding": "x" * 70_000}).encode()
    response = await booking.http.post("/points/charge", content=body,
                                       headers={**auth(user), "Content-Type": "application/json"})
    assert_problem(response, 413)
    assert response.headers["connection"] == "close"  # the unread body ends the connection

    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"amount": 10, "padding": "'
        for _ in range(10):
            yield b"x" * 8_000
        yield b'"}'

    chunked = await booking.http.post("/points/charge", content=chunks(),
                                      headers={**auth(user), "Content-Type": "application/json"})
    assert_problem(chunked, 413)
    assert chunked.headers["connection"] == "close"
    assert await _balance(booking, user) == 0
    # Just under the limit is fine (unknown fields are ignored).
    small = json.dumps({"amount": 10, "padding": "x" * 60_000}).encode()
    ok = await booking.http.post("/points/charge", content=small,
                                 headers={**auth(user), "Content-Type": "application/json"})
    assert ok.status_code == 200, ok.text


async def test_a_refused_payment_replays_402_even_after_a_charge(booking: Booking) -> None:
    user, token, concert = await _ready(booking, points=1_000, price=5_000)
    reservation = (await booking.hold(user, token, concert["schedules"][0]["id"], 1)).json()
    key = uuid.uuid4().hex
    first = await booking.pay(user, token, reservation["id"], key=key)
    assert_problem(first, 402, "INSUFFICIENT_POINTS")
    await booking.charge(user, 10_000)
    again = await booking.pay(user, token, reservation["id"], key=key)
    assert again.status_code == 402 and again.content == first.content
    assert again.headers["content-type"].startswith("application/problem+json")
    assert await _balance(booking, user) == 11_000
    # A new key is a new request.
    assert (await booking.pay(user, token, reservation["id"])).status_code == 201
    assert await _balance(booking, user) == 6_000


async def test_a_charge_with_a_key_is_applied_once(booking: Booking) -> None:
    user = new_user("once")
    headers = {**auth(user), "Idempotency-Key": "charge-" + uuid.uuid4().hex}
    first = await booking.http.post("/points/charge", json={"amount": 700}, headers=headers)
    repeats = await asyncio.gather(
        *(booking.http.post("/points/charge", json={"amount": 700}, headers=headers) for _ in range(10))
    )
    assert first.status_code == 200 and first.json() == {"user_id": user, "balance": 700}
    assert {(r.status_code, r.content) for r in repeats} == {(200, first.content)}
    assert await _balance(booking, user) == 700
    assert await _history(booking, user) == [("CHARGE", 700)]
    # The key is the user's own: another user with the same key gets their own charge.
    other = new_user("once")
    response = await booking.http.post("/points/charge", json={"amount": 300},
                                       headers={**auth(other), "Idempotency-Key": headers["Idempotency-Key"]})
    assert response.json() == {"user_id": other, "balance": 300}
    # And a stored refusal is kept too.
    for amount in (9_999_300, *[10_000_000] * 9):
        await booking.charge(user, amount)
    limit_key = {**auth(user), "Idempotency-Key": uuid.uuid4().hex}
    refused = await booking.http.post("/points/charge", json={"amount": 1}, headers=limit_key)
    assert_problem(refused, 409, "BALANCE_LIMIT_EXCEEDED")
    again = await booking.http.post("/points/charge", json={"amount": 1}, headers=limit_key)
    assert again.status_code == 409 and again.content == refused.content


async def test_idempotency_key_in_progress_409_then_the_key_is_free(
    booking: Booking, settings: Settings
) -> None:
    """A request whose key another transaction still claims waits for it, then gives up."""
    user = new_user("busy")
    await booking.charge(user, 1)
    key = uuid.uuid4().hex
    engine = create_async_engine(settings.database_dsn)
    try:
        async with engine.connect() as holder:
            transaction = await holder.begin()
            await holder.execute(text(
                "INSERT INTO idempotency_keys (user_id, scope, key, request_hash, status_code) "
                "VALUES (:u, 'points.charge', :k, 'in-flight', 0)"), {"u": user, "k": key})
            response = await booking.http.post("/points/charge", json={"amount": 5},
                                               headers={**auth(user), "Idempotency-Key": key})
            await transaction.rollback()
    finally:
        await engine.dispose()
    assert_problem(response, 409, "IDEMPOTENCY_KEY_IN_PROGRESS")
    assert await _balance(booking, user) == 1
    retried = await booking.http.post("/points/charge", json={"amount": 5},
                                      headers={**auth(user), "Idempotency-Key": key})
    assert retried.json() == {"user_id": user, "balance": 6}
