"""Booking flows through the real API, and what the providers and the database saw of them."""

from __future__ import annotations

import asyncio
import secrets
from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from services.booking.domain.ticket_saga import notification_id
from tests.e2e.stack import Stack
from tests.support import Booking, auth, new_user
from workers.devstack.simulators.server import SimulatorServer

PRICE = 10_000


def new_phone() -> str:
    return "010" + "".join(secrets.choice("0123456789") for _ in range(8))


@dataclass(frozen=True)
class Paid:
    user_id: str
    phone: str | None
    payment_id: str
    ticket_id: str
    reservation_id: str
    schedule_id: str
    seat_no: int

    @property
    def confirmation_id(self) -> str:
        return str(notification_id(UUID(self.payment_id), "TICKET_CONFIRMED"))

    @property
    def refund_notice_id(self) -> str:
        return str(notification_id(UUID(self.payment_id), "PAYMENT_REFUNDED"))


async def customer(booking: Booking, *, phone: str | None, points: int = PRICE) -> str:
    """A new user who presented a name (and phone) claim and holds `points`."""
    user = new_user("e2e")
    claims: dict[str, str] = {"name": "Kim " + user[-4:]}
    if phone is not None:
        claims["phone_number"] = phone
    response = await booking.http.post("/points/charge", json={"amount": points},
                                       headers=auth(user, **claims))
    assert response.status_code == 200, response.text
    return user


async def buy(booking: Booking, user: str, phone: str | None, schedule_id: str, seat_no: int) -> Paid:
    token = await booking.active_token(user, booking.concert_of_schedule[schedule_id])
    hold = await booking.hold(user, token, schedule_id, seat_no)
    assert hold.status_code == 201, hold.text
    paid = await booking.pay(user, token, hold.json()["id"])
    assert paid.status_code == 201, paid.text
    body = paid.json()
    return Paid(user, phone, body["id"], body["ticket"]["id"], body["reservation_id"], schedule_id,
                seat_no)


async def new_schedule(booking: Booking, seats: int) -> str:
    concert = await booking.create_concert(seat_count=seats, price=PRICE)
    return str(concert["schedules"][0]["id"])


async def buy_seats(stack: Stack, count: int, *, phones: list[str | None] | None = None,
                    schedule_id: str | None = None, first_seat: int = 1,
                    concurrency: int = 40) -> list[Paid]:
    """`count` users each buy one seat (from `first_seat` on), `concurrency` at a time."""
    schedule_id = schedule_id or await new_schedule(stack.booking, count)
    phones = phones or [new_phone() for _ in range(count)]
    gate = asyncio.Semaphore(concurrency)

    async def one(index: int) -> Paid:
        async with gate:
            user = await customer(stack.booking, phone=phones[index])
            return await buy(stack.booking, user, phones[index], schedule_id, first_seat + index)

    return list(await asyncio.gather(*(one(index) for index in range(count))))


# --- what happened downstream -------------------------------------------------------


async def statuses(stack: Stack, table: str, ids: list[str]) -> Counter[str]:
    rows = await stack.sql(f"SELECT status FROM {table} WHERE id = ANY(CAST(:ids AS uuid[]))", ids=ids)
    return Counter(row["status"] for row in rows)


async def tickets_settled(stack: Stack, paid: list[Paid]) -> bool:
    found = await statuses(stack, "tickets", [p.ticket_id for p in paid])
    return found["PENDING"] == 0 and sum(found.values()) == len(paid)


async def notifications_final(stack: Stack, ids: list[str], status: str = "DELIVERED") -> bool:
    return (await statuses(stack, "notifications", ids))[status] == len(ids)


def accepted_by(sim: SimulatorServer, key_field: str = "message_id") -> Counter[str]:
    """How often the provider accepted each id for real (repeats answered as duplicates excluded)."""
    return Counter(call.key for call in sim.calls() if call.outcome == "accepted" and call.key)


def calls_for(sim: SimulatorServer, ids: set[str]) -> list[Any]:
    return [call for call in sim.calls() if call.key in ids]


async def commit_to_provider_seconds(stack: Stack, paid: list[Paid]) -> list[float]:
    """Payment commit (its created_at) to the notification's first provider call, sorted."""
    rows = await stack.sql(
        "SELECT id::text AS id, created_at FROM payments WHERE id = ANY(CAST(:ids AS uuid[]))",
        ids=[p.payment_id for p in paid])
    committed = {row["id"]: row["created_at"] for row in rows}
    first_call: dict[str, datetime] = {}
    for call in stack.kakao.calls() + stack.sms.calls():
        first_call.setdefault(str(call.key), datetime.fromisoformat(call.received_at))
    return sorted((first_call[p.confirmation_id] - committed[p.payment_id]).total_seconds()
                  for p in paid)


def assert_each_sent_once(stack: Stack, ids: list[str], channel: str | None = None) -> None:
    """Exactly one provider accepted each notification, once (by its stable message id)."""
    kakao, sms = accepted_by(stack.kakao), accepted_by(stack.sms)
    for message_id in ids:
        total = kakao[message_id] + sms[message_id]
        assert total == 1, f"{message_id}: kakao accepted {kakao[message_id]}, sms {sms[message_id]}"
        if channel is not None:
            chosen = kakao if channel == "kakao" else sms
            assert chosen[message_id] == 1, f"{message_id} not sent by {channel}"
