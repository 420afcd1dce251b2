"""Payments and tickets in PostgreSQL."""

import json
from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from services.booking.domain.seat_hold import Reservation

# The reservation row, then its owner's wallet row, locked in that order by one
# statement: LATERAL makes the wallet lookup run for the reservation already locked,
# the fixed order (reservation, wallet, seat) that keeps payments from deadlocking.
LOCK_FOR_PAYMENT = text("""
SELECT r.id, r.user_id, r.schedule_id, r.seat_no, r.price, r.status, r.expires_at,
       coalesce(w.balance, 0) AS balance
  FROM (SELECT id, user_id, schedule_id, seat_no, price, status, expires_at
          FROM reservations WHERE id = :id AND user_id = :user_id FOR UPDATE) AS r
  LEFT JOIN LATERAL (SELECT balance FROM wallets WHERE user_id = r.user_id FOR UPDATE) AS w
    ON true
""")
# Everything a payment writes, in one round trip: wallet and its history row, payment,
# ticket, reservation, token expiry, outbox rows, and the seat, whose update is
# conditional on this reservation still holding it. When it is not, the caller rolls
# the whole transaction back.
RECORD_PAYMENT = text("""
WITH wallet AS (
    UPDATE wallets SET balance = :balance_after, updated_at = :now WHERE user_id = :user_id
), history AS (
    INSERT INTO point_history (user_id, type, amount, balance_after, payment_id, created_at)
    VALUES (:user_id, 'USE', :amount, :balance_after, :payment_id, :now)
), payment AS (
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
), events AS (
    INSERT INTO outbox (event_id, event_type, event_version, topic, aggregate_type,
                        aggregate_id, trace_id, payload)
    SELECT e.event_id, e.event_type, 1, e.topic, e.aggregate_type, e.aggregate_id, e.trace_id,
           CAST(e.payload AS jsonb)
      FROM jsonb_to_recordset(CAST(:events AS jsonb)) AS e(
           event_id uuid, event_type text, topic text, aggregate_type text, aggregate_id text,
           trace_id text, payload text)
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


async def lock_for_payment(
    conn: AsyncConnection, reservation_id: UUID, user_id: str
) -> tuple[Reservation, int] | None:
    """Lock the user's reservation, then their wallet; the reservation and the balance."""
    row = (await conn.execute(LOCK_FOR_PAYMENT, {"id": reservation_id, "user_id": user_id})).first()
    if row is None:
        return None
    fields = dict(row._mapping)
    balance = int(fields.pop("balance"))
    return Reservation(**fields), balance


async def record_payment(
    conn: AsyncConnection, reservation: Reservation, payment_id: UUID, ticket_id: UUID,
    queue_token: str | None, now: datetime, balance_after: int, outbox_rows: list[dict[str, Any]],
) -> bool:
    """Write the whole payment; False when the hold no longer owns the seat."""
    row = (await conn.execute(RECORD_PAYMENT, {
        "payment_id": payment_id, "ticket_id": ticket_id, "reservation_id": reservation.id,
        "user_id": reservation.user_id, "amount": reservation.price,
        "schedule_id": reservation.schedule_id, "seat_no": reservation.seat_no,
        "token": queue_token, "now": now, "balance_after": balance_after,
        "events": json.dumps(outbox_rows, default=str),
    })).one()
    return bool(row.sold)


async def own_payment(conn: AsyncConnection, payment_id: UUID, user_id: str) -> dict[str, Any] | None:
    row = (await conn.execute(SELECT_PAYMENT, {"id": payment_id, "user_id": user_id})).first()
    return None if row is None else dict(row._mapping)


async def own_tickets(conn: AsyncConnection, user_id: str) -> list[dict[str, Any]]:
    return [dict(row._mapping) for row in await conn.execute(SELECT_TICKETS, {"user_id": user_id})]
