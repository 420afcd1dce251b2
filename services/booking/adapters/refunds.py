"""Undoing a payment in PostgreSQL: the saga's compensation.

Rows are locked in the payment's order (reservation, wallet, then seat), so a
compensation and a payment never wait on each other in a cycle.
"""

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

LOCK_RESERVATION = text("SELECT user_id, schedule_id, seat_no FROM reservations WHERE id = :id FOR UPDATE")
LOCK_SEAT = text("SELECT 1 FROM seats WHERE schedule_id = :schedule_id AND seat_no = :seat_no FOR UPDATE")
# Everything but the wallet in one round trip; the payment's PAID -> REFUNDED update
# is the condition for all of it, so a second compensation changes nothing.
UNDO_PAYMENT = text("""
WITH payment AS (
    UPDATE payments SET status = 'REFUNDED', refunded_at = :now
     WHERE id = :payment_id AND status = 'PAID'
    RETURNING id, amount, reservation_id
), ticket AS (
    UPDATE tickets SET status = 'VOID', updated_at = :now
     WHERE payment_id IN (SELECT id FROM payment) AND status <> 'VOID'
), reservation AS (
    UPDATE reservations SET status = 'CANCELLED'
     WHERE id IN (SELECT reservation_id FROM payment) AND status = 'PAID'
), seat AS (
    UPDATE seats SET status = 'AVAILABLE', reservation_id = NULL, held_until = NULL
     WHERE schedule_id = :schedule_id AND seat_no = :seat_no AND status = 'SOLD'
       AND reservation_id IN (SELECT reservation_id FROM payment)
)
SELECT amount FROM payment
""")


@dataclass(frozen=True)
class LockedPayment:
    user_id: str
    schedule_id: UUID
    seat_no: int


async def lock_for_refund(conn: AsyncConnection, reservation_id: UUID) -> LockedPayment | None:
    """Lock the reservation, then its seat; the caller locks the wallet in between."""
    row = (await conn.execute(LOCK_RESERVATION, {"id": reservation_id})).first()
    return None if row is None else LockedPayment(**row._mapping)


async def lock_seat(conn: AsyncConnection, schedule_id: UUID, seat_no: int) -> None:
    await conn.execute(LOCK_SEAT, {"schedule_id": schedule_id, "seat_no": seat_no})


async def undo_payment(
    conn: AsyncConnection, payment_id: UUID, schedule_id: UUID, seat_no: int, now: datetime
) -> int | None:
    """Void the ticket, refund the payment, free the seat; the amount, or None if done before."""
    row = (await conn.execute(UNDO_PAYMENT, {
        "payment_id": payment_id, "schedule_id": schedule_id, "seat_no": seat_no, "now": now,
    })).first()
    return None if row is None else int(row.amount)
