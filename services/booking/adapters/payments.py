"""Payments and tickets in PostgreSQL."""

from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from services.booking.domain.seat_hold import Reservation

# Everything a payment changes besides the wallet, in one round trip; the seat
# update is conditional on this reservation still holding it.
RECORD_PAYMENT = text("""
WITH payment AS (
    INSERT INTO payments (id, reservation_id, user_id, amount, status, created_at)
    VALUES (:payment_id, :reservation_id, :user_id, :amount, 'PAID', :now)
), ticket AS (
    INSERT INTO tickets (id, payment_id, user_id, schedule_id, seat_no, status, created_at,
                         updated_at)
    VALUES (:ticket_id, :payment_id, :user_id, :schedule_id, :seat_no, 'PENDING', :now, :now)
), reservation AS (
    UPDATE reservations SET status = 'PAID' WHERE id = :reservation_id
), token AS (
    INSERT INTO queue_token_expiries (token, user_id, payment_id, expired_at)
    SELECT :token, :user_id, :payment_id, :now WHERE CAST(:token AS text) IS NOT NULL
    ON CONFLICT (token) DO NOTHING
), seat AS (
    UPDATE seats SET status = 'SOLD', held_until = NULL
     WHERE schedule_id = :schedule_id AND seat_no = :seat_no
       AND reservation_id = :reservation_id AND status = 'HELD'
    RETURNING 1
)
SELECT count(*) AS sold FROM seat
""")
SELECT_PAYMENT = text("""
SELECT id, reservation_id, amount, status, created_at, refunded_at
  FROM payments WHERE id = :id AND user_id = :user_id
""")
SELECT_TICKETS = text("""
SELECT id, payment_id, schedule_id, seat_no, status FROM tickets
 WHERE user_id = :user_id ORDER BY created_at, id
""")


async def record_payment(
    conn: AsyncConnection, reservation: Reservation, payment_id: UUID, ticket_id: UUID,
    queue_token: str | None, now: datetime,
) -> bool:
    """Write payment, ticket and SOLD seat; False when the hold no longer owns the seat."""
    row = (await conn.execute(RECORD_PAYMENT, {
        "payment_id": payment_id, "ticket_id": ticket_id, "reservation_id": reservation.id,
        "user_id": reservation.user_id, "amount": reservation.price,
        "schedule_id": reservation.schedule_id, "seat_no": reservation.seat_no,
        "token": queue_token, "now": now,
    })).one()
    return bool(row.sold)


async def own_payment(conn: AsyncConnection, payment_id: UUID, user_id: str) -> dict[str, Any] | None:
    row = (await conn.execute(SELECT_PAYMENT, {"id": payment_id, "user_id": user_id})).first()
    return None if row is None else dict(row._mapping)


async def own_tickets(conn: AsyncConnection, user_id: str) -> list[dict[str, Any]]:
    return [dict(row._mapping) for row in await conn.execute(SELECT_TICKETS, {"user_id": user_id})]
