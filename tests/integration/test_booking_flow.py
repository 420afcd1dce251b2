"""One booking, step by step, against the real API, PostgreSQL and Redis."""

import pytest

from tests.support import Booking, auth, new_user

pytestmark = pytest.mark.integration


async def test_a_booking_from_queue_to_ticket(booking: Booking) -> None:
    concert = await booking.create_concert(seat_count=10, price=30_000)
    schedule = concert["schedules"][0]
    user = new_user()
    await booking.charge(user, 50_000)
    queue_token = await booking.active_token(user, concert)

    held = await booking.hold(user, queue_token, schedule["id"], 3)
    assert held.status_code == 201, held.text
    assert held.json()["status"] == "HELD" and held.json()["price"] == 30_000

    seats = (await booking.http.get(f"/schedules/{schedule['id']}/seats")).json()["items"]
    assert {s["seat_no"]: s["status"] for s in seats}[3] == "HELD"

    paid = await booking.pay(user, queue_token, held.json()["id"])
    assert paid.status_code == 201, paid.text
    body = paid.json()
    assert body["status"] == "PAID" and body["amount"] == 30_000
    assert body["ticket"]["status"] == "PENDING" and body["ticket"]["seat_no"] == 3

    balance = (await booking.http.get("/points", headers=auth(user))).json()
    assert balance == {"user_id": user, "balance": 20_000}
    seats = (await booking.http.get(f"/schedules/{schedule['id']}/seats")).json()["items"]
    assert {s["seat_no"]: s["status"] for s in seats}[3] == "SOLD"
    tickets = (await booking.http.get("/tickets", headers=auth(user))).json()["items"]
    assert [t["id"] for t in tickets] == [body["ticket"]["id"]]
    payment = (await booking.http.get(f"/payments/{body['id']}", headers=auth(user))).json()
    assert payment["status"] == "PAID" and payment["refunded_at"] is None
    history = (await booking.http.get("/points/history", headers=auth(user))).json()
    assert [(h["type"], h["amount"], h["balance_after"]) for h in history["items"]] == [
        ("USE", 30_000, 20_000), ("CHARGE", 50_000, 50_000)]

    # A payment expires the queue token at once.
    me = await booking.http.get("/queue/tokens/me",
                                headers={**auth(user), "X-Queue-Token": queue_token})
    assert me.status_code == 401 and me.json()["code"] == "QUEUE_TOKEN_INVALID"
