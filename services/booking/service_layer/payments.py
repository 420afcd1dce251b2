"""Paying for a held seat: one transaction, or nothing at all."""

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID, uuid4

import asyncpg
from sqlalchemy.ext.asyncio import AsyncConnection

from services.booking.adapters import outbox, payments
from services.booking.domain.errors import NotFound, QueueTokenInvalid, ReservationExpired
from services.booking.domain.events import PaymentCompleted, QueueTokenExpired
from services.booking.domain.seat_hold import Reservation, check_payable
from services.booking.domain.wallet import balance_after_payment


@dataclass(frozen=True)
class PaymentReceipt:
    payment_id: UUID
    ticket_id: UUID
    reservation: Reservation


async def pay(
    conn: asyncpg.Connection, user_id: str, reservation_id: UUID, queue_token: str | None,
    now: datetime, trace_id: str | None, *, token_concert: UUID | None = None,
) -> PaymentReceipt:
    """Take payment for a hold: one statement locks (reservation, then wallet), one writes.

    `token_concert`: the concert the caller's queue token admits to; a hold for another
    concert is refused (read with the lock, not in a round trip of its own).
    """
    locked = await payments.lock_for_payment(conn, reservation_id, user_id)
    if locked is None:
        raise NotFound(f"no reservation {reservation_id}")
    if token_concert is not None and locked.concert_id != token_concert:
        raise QueueTokenInvalid("the queue token was issued for another concert")
    reservation = locked.reservation
    check_payable(reservation, now)
    after = balance_after_payment(locked.balance, reservation.price)

    receipt = PaymentReceipt(payment_id=uuid4(), ticket_id=uuid4(), reservation=reservation)
    events: list[Any] = [PaymentCompleted(
        payment_id=receipt.payment_id, reservation_id=reservation.id, ticket_id=receipt.ticket_id,
        user_id=user_id, schedule_id=reservation.schedule_id, seat_no=reservation.seat_no,
        amount=reservation.price, queue_token=queue_token,
    )]
    if queue_token is not None:
        events.append(QueueTokenExpired(token=queue_token, user_id=user_id, reason="PAID"))
    rows = [outbox.outbox_row(event, trace_id) for event in events]
    if not await payments.record_payment(
        conn, reservation, receipt.payment_id, receipt.ticket_id, queue_token, now, after, rows
    ):
        # The hold ran out and another user took the seat between our check and write.
        raise ReservationExpired(f"the hold on seat {reservation.seat_no} has expired")
    return receipt


async def get_payment(conn: AsyncConnection, user_id: str, payment_id: UUID) -> dict[str, Any]:
    found = await payments.own_payment(conn, payment_id, user_id)
    if found is None:
        raise NotFound(f"no payment {payment_id}")
    return found
