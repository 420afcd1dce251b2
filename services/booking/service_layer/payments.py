"""Paying for a held seat: one transaction, or nothing at all."""

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID, uuid4

from sqlalchemy.ext.asyncio import AsyncConnection

from services.booking.adapters import outbox, payments, reservations, wallets
from services.booking.domain.errors import NotFound, ReservationExpired
from services.booking.domain.events import PaymentCompleted, QueueTokenExpired
from services.booking.domain.seat_hold import Reservation, check_payable
from services.booking.domain.wallet import balance_after_payment


@dataclass(frozen=True)
class PaymentReceipt:
    payment_id: UUID
    ticket_id: UUID
    reservation: Reservation


async def pay(
    conn: AsyncConnection, user_id: str, reservation_id: UUID, queue_token: str | None,
    now: datetime, trace_id: str | None,
) -> PaymentReceipt:
    """Take payment for a hold; rows are locked reservation first, then wallet."""
    reservation = await reservations.own(conn, reservation_id, user_id, lock=True)
    if reservation is None:
        raise NotFound(f"no reservation {reservation_id}")
    check_payable(reservation, now)
    after = balance_after_payment(await wallets.lock_balance(conn, user_id), reservation.price)

    receipt = PaymentReceipt(payment_id=uuid4(), ticket_id=uuid4(), reservation=reservation)
    await wallets.record_movement(
        conn, user_id, "USE", reservation.price, after, now, payment_id=receipt.payment_id
    )
    if not await payments.record_payment(
        conn, reservation, receipt.payment_id, receipt.ticket_id, queue_token, now
    ):
        # The hold ran out and another user took the seat between our check and write.
        raise ReservationExpired(f"the hold on seat {reservation.seat_no} has expired")
    events: list[Any] = [PaymentCompleted(
        payment_id=receipt.payment_id, reservation_id=reservation.id, ticket_id=receipt.ticket_id,
        user_id=user_id, schedule_id=reservation.schedule_id, seat_no=reservation.seat_no,
        amount=reservation.price, queue_token=queue_token,
    )]
    if queue_token is not None:
        events.append(QueueTokenExpired(token=queue_token, user_id=user_id, reason="PAID"))
    await outbox.add_events(conn, events, trace_id)
    return receipt


async def get_payment(conn: AsyncConnection, user_id: str, payment_id: UUID) -> dict[str, Any]:
    found = await payments.own_payment(conn, payment_id, user_id)
    if found is None:
        raise NotFound(f"no payment {payment_id}")
    return found
