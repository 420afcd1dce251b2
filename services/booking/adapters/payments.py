"""Payments and tickets in PostgreSQL: paying runs in a unit of work on asyncpg directly
(a hot path); reading payments and tickets goes through SQLAlchemy."""

from collections.abc import Callable
from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from services.booking.adapters.outbox import insert_events_from, rows_parameter
from services.booking.domain.payment import PayableHold, Payment
from services.booking.domain.seat_hold import Reservation

# The reservation row, then its owner's wallet row, locked in that order by one
# statement: LATERAL makes the wallet lookup run for the reservation already locked,
# the fixed order (reservation, wallet, seat) that keeps payments from deadlocking.
LOCK_FOR_PAYMENT = """
SELECT r.id, r.user_id, r.schedule_id, r.seat_no, r.price, r.status, r.expires_at,
       coalesce(w.balance, 0) AS balance,
       (SELECT concert_id FROM schedules WHERE id = r.schedule_id) AS concert_id
  FROM (SELECT id, user_id, schedule_id, seat_no, price, status, expires_at
          FROM reservations WHERE id = $1 AND user_id = $2 FOR UPDATE) AS r
  LEFT JOIN LATERAL (SELECT balance FROM wallets WHERE user_id = r.user_id FOR UPDATE) AS w
    ON true
"""
# Everything a payment writes, in one round trip: wallet and its history row, payment,
# ticket, reservation, the spent token's expiry (which also queues it for booking-worker
# token-expiry: swept_at is not set), outbox rows, and the seat, whose update is
# conditional on this reservation still holding it. When it is not, the caller rolls
# the whole transaction back.
RECORD_PAYMENT = f"""
WITH wallet AS (
    UPDATE wallets SET balance = $10, updated_at = $9 WHERE user_id = $4
), history AS (
    INSERT INTO point_history (user_id, type, amount, balance_after, payment_id, created_at)
    VALUES ($4, 'USE', $5, $10, $1, $9)
), payment AS (
    INSERT INTO payments (id, reservation_id, user_id, amount, status, created_at)
    VALUES ($1, $3, $4, $5, 'PAID', $9)
), ticket AS (
    INSERT INTO tickets (id, payment_id, user_id, schedule_id, seat_no, status, created_at,
                         updated_at)
    VALUES ($2, $1, $4, $6, $7, 'PENDING', $9, $9)
), reservation AS (
    UPDATE reservations SET status = 'PAID' WHERE id = $3
), token AS (
    INSERT INTO queue_token_expiries (token, user_id, payment_id, expired_at)
    SELECT $8, $4, $1, $9 WHERE CAST($8 AS text) IS NOT NULL
    ON CONFLICT (token) DO NOTHING
), events AS ({insert_events_from("$11")}
), seat AS (
    UPDATE seats SET status = 'SOLD', held_until = NULL
     WHERE schedule_id = $6 AND seat_no = $7
       AND reservation_id = $3 AND status = 'HELD'
    RETURNING 1
)
SELECT count(*) AS sold FROM seat
"""  # noqa: S608 (constants only: no input)
SELECT_PAYMENT = text("""
SELECT id, reservation_id, amount, status, created_at, refunded_at
  FROM payments WHERE id = :id AND user_id = :user_id
""")
SELECT_TICKETS = text("""
SELECT id, payment_id, schedule_id, seat_no, status FROM tickets
 WHERE user_id = :user_id ORDER BY created_at, id
""")


class PostgresPayments:
    """Paying inside a unit of work's transaction; the payment's statement also carries
    the events collected so far (`take_rows`), so they cost no round trip of their own."""

    __slots__ = ("_conn", "_take_rows")

    def __init__(self, conn: asyncpg.Connection, take_rows: Callable[[], list[dict[str, Any]]]) -> None:
        self._conn = conn
        self._take_rows = take_rows

    async def lock_for_payment(self, reservation_id: UUID, user_id: str) -> PayableHold | None:
        row = await self._conn.fetchrow(LOCK_FOR_PAYMENT, reservation_id, user_id)
        if row is None:
            return None
        fields = dict(row)
        balance, concert_id = int(fields.pop("balance")), fields.pop("concert_id")
        return PayableHold(Reservation(**fields), balance, concert_id)

    async def record(self, payment: Payment, queue_token: str | None, now: datetime) -> bool:
        reservation, rows = payment.reservation, self._take_rows()
        sold = await self._conn.fetchval(
            RECORD_PAYMENT, payment.id, payment.ticket_id, reservation.id, reservation.user_id,
            reservation.price, reservation.schedule_id, reservation.seat_no, queue_token, now,
            payment.balance_after, rows_parameter(rows),
        )
        return bool(sold)


async def own_payment(conn: AsyncConnection, payment_id: UUID, user_id: str) -> dict[str, Any] | None:
    row = (await conn.execute(SELECT_PAYMENT, {"id": payment_id, "user_id": user_id})).first()
    return None if row is None else dict(row._mapping)


async def own_tickets(conn: AsyncConnection, user_id: str) -> list[dict[str, Any]]:
    return [dict(row._mapping) for row in await conn.execute(SELECT_TICKETS, {"user_id": user_id})]
