"""Paying for a held seat: one transaction, or nothing at all."""

from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy.ext.asyncio import AsyncConnection

from services.booking.adapters import payments
from services.booking.domain.errors import NotFound, ReservationExpired
from services.booking.domain.payment import Payment, take_payment
from services.booking.service_layer.unit_of_work import UnitOfWork


async def pay(
    uow: UnitOfWork, user_id: str, reservation_id: UUID, queue_token: str | None, now: datetime,
    *, token_concert: UUID | None = None,
) -> Payment:
    """Take payment for a hold: one statement locks (reservation, then wallet), one writes
    the payment with its events.

    `token_concert`: the concert the caller's queue token admits to; a hold for another
    concert is refused (read with the lock, not in a round trip of its own).
    """
    hold = await uow.payments.lock_for_payment(reservation_id, user_id)
    if hold is None:
        raise NotFound(f"no reservation {reservation_id}")
    payment = take_payment(hold, queue_token, now, token_concert)
    uow.collect(payment.events)
    if not await uow.payments.record(payment, queue_token, now):
        # The hold ran out and another user took the seat between our check and write.
        raise ReservationExpired(f"the hold on seat {payment.reservation.seat_no} has expired")
    return payment


async def get_payment(conn: AsyncConnection, user_id: str, payment_id: UUID) -> dict[str, Any]:
    found = await payments.own_payment(conn, payment_id, user_id)
    if found is None:
        raise NotFound(f"no payment {payment_id}")
    return found
