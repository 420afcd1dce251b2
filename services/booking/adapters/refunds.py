"""Undoing a payment in PostgreSQL: the saga's compensation.

Rows are locked in the payment's order (reservation, wallet, then seat), so a
compensation and a payment never wait on each other in a cycle.
"""

from datetime import datetime
from uuid import UUID

import asyncpg

from services.booking.domain.ticket_saga import LockedPayment

LOCK_RESERVATION = "SELECT user_id, schedule_id, seat_no FROM reservations WHERE id = $1 FOR UPDATE"
LOCK_SEAT = "SELECT 1 FROM seats WHERE schedule_id = $1 AND seat_no = $2 FOR UPDATE"
# Everything but the wallet in one round trip; the payment's PAID -> REFUNDED update
# is the condition for all of it, so a second compensation changes nothing.
UNDO_PAYMENT = """
WITH payment AS (
    UPDATE payments SET status = 'REFUNDED', refunded_at = $4
     WHERE id = $1 AND status = 'PAID'
    RETURNING id, amount, reservation_id
), ticket AS (
    UPDATE tickets SET status = 'VOID', updated_at = $4
     WHERE payment_id IN (SELECT id FROM payment) AND status <> 'VOID'
), reservation AS (
    UPDATE reservations SET status = 'CANCELLED'
     WHERE id IN (SELECT reservation_id FROM payment) AND status = 'PAID'
), seat AS (
    UPDATE seats SET status = 'AVAILABLE', reservation_id = NULL, held_until = NULL
     WHERE schedule_id = $2 AND seat_no = $3 AND status = 'SOLD'
       AND reservation_id IN (SELECT reservation_id FROM payment)
)
SELECT amount FROM payment
"""


class PostgresRefunds:
    """Undoing a payment inside a unit of work's transaction."""

    __slots__ = ("_conn",)

    def __init__(self, conn: asyncpg.Connection) -> None:
        self._conn = conn

    async def lock_for_refund(self, reservation_id: UUID) -> LockedPayment | None:
        row = await self._conn.fetchrow(LOCK_RESERVATION, reservation_id)
        return None if row is None else LockedPayment(**row)

    async def lock_seat(self, schedule_id: UUID, seat_no: int) -> None:
        await self._conn.execute(LOCK_SEAT, schedule_id, seat_no)

    async def undo_payment(self, payment_id: UUID, schedule_id: UUID, seat_no: int,
                           now: datetime) -> int | None:
        amount = await self._conn.fetchval(UNDO_PAYMENT, payment_id, schedule_id, seat_no, now)
        return None if amount is None else int(amount)
