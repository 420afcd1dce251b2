"""Seat holds in PostgreSQL: the conditional seat update is the guarantee against oversell.

Taking, cancelling and sweeping holds run in a unit of work, on asyncpg directly (taking
one is a hot path); reading one goes through SQLAlchemy.
"""

from datetime import datetime
from uuid import UUID

import asyncpg
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from services.booking.domain.seat_hold import Reservation, SeatTaken

# The user's row lock serialises one user's concurrent holds, so the hold limit
# cannot be overrun by parallel requests; other users are not slowed down. The count
# must be a separate statement: under READ COMMITTED a statement keeps the snapshot
# it started with, so a count in the locking statement misses the holds committed
# while it waited for the lock. NO KEY UPDATE, not UPDATE: the new reservation's
# foreign key already holds KEY SHARE on the user row, and two holds each holding
# KEY SHARE while waiting for FOR UPDATE would deadlock.
LOCK_USER = "SELECT 1 FROM users WHERE id = $1 FOR NO KEY UPDATE"
COUNT_LIVE_HOLDS = """
SELECT count(*) FROM reservations r
 WHERE r.user_id = $1 AND r.schedule_id = $2 AND r.status = 'HELD' AND r.expires_at > $3
"""
# Takes the seat only if nobody holds it now (an expired hold counts as free), and
# says in the same round trip whether a refused seat exists at all: in a rush most
# requests are refusals, and each costs one statement.
TAKE_SEAT = """
WITH seat AS (
    UPDATE seats SET status = 'HELD', reservation_id = $1, held_until = $5
     WHERE schedule_id = $3 AND seat_no = $4
       AND (status = 'AVAILABLE' OR (status = 'HELD' AND held_until <= $6))
    RETURNING schedule_id, seat_no
), held AS (
    INSERT INTO reservations (id, user_id, schedule_id, seat_no, price, status, expires_at,
                              created_at)
    SELECT $1, $2, seat.schedule_id, seat.seat_no, sc.price, 'HELD', $5, $6
      FROM seat JOIN schedules sc ON sc.id = seat.schedule_id
    RETURNING price
)
SELECT (SELECT price FROM held) AS price,
       EXISTS (SELECT 1 FROM seats WHERE schedule_id = $3 AND seat_no = $4) AS seat_exists
"""
SELECT_OWN = text("""
SELECT id, user_id, schedule_id, seat_no, price, status, expires_at
  FROM reservations WHERE id = :id AND user_id = :user_id
""")
LOCK_OWN = """
SELECT id, user_id, schedule_id, seat_no, price, status, expires_at
  FROM reservations WHERE id = $1 AND user_id = $2 FOR UPDATE
"""
RELEASE = """
WITH cancelled AS (UPDATE reservations SET status = $2 WHERE id = $1)
UPDATE seats SET status = 'AVAILABLE', reservation_id = NULL, held_until = NULL
 WHERE schedule_id = $3 AND seat_no = $4
   AND reservation_id = $1 AND status = 'HELD'
"""
# Housekeeping only: every reader already treats an expired hold as released.
SWEEP_EXPIRED = """
WITH expired AS (
    UPDATE reservations SET status = 'EXPIRED'
     WHERE id IN (SELECT id FROM reservations WHERE status = 'HELD' AND expires_at <= $1
                   ORDER BY expires_at LIMIT $2 FOR UPDATE SKIP LOCKED)
    RETURNING id, schedule_id, seat_no
)
UPDATE seats s SET status = 'AVAILABLE', reservation_id = NULL, held_until = NULL
  FROM expired e
 WHERE s.schedule_id = e.schedule_id AND s.seat_no = e.seat_no
   AND s.reservation_id = e.id AND s.status = 'HELD'
"""


class PostgresReservations:
    """Holds inside a unit of work's transaction."""

    __slots__ = ("_conn",)

    def __init__(self, conn: asyncpg.Connection) -> None:
        self._conn = conn

    async def take_seat(self, planned: Reservation, now: datetime) -> SeatTaken:
        row = await self._conn.fetchrow(
            TAKE_SEAT, planned.id, planned.user_id, planned.schedule_id, planned.seat_no,
            planned.expires_at, now,
        )
        return SeatTaken(None if row["price"] is None else int(row["price"]), bool(row["seat_exists"]))

    async def live_holds(self, user_id: str, schedule_id: UUID, now: datetime) -> int:
        await self._conn.execute(LOCK_USER, user_id)
        return int(await self._conn.fetchval(COUNT_LIVE_HOLDS, user_id, schedule_id, now))

    async def lock_own(self, reservation_id: UUID, user_id: str) -> Reservation | None:
        row = await self._conn.fetchrow(LOCK_OWN, reservation_id, user_id)
        return None if row is None else Reservation(**row)

    async def release(self, reservation: Reservation, status: str) -> None:
        await self._conn.execute(
            RELEASE, reservation.id, status, reservation.schedule_id, reservation.seat_no)

    async def sweep_expired(self, now: datetime, limit: int = 1000) -> int:
        """Close up to `limit` holds expired at `now` as EXPIRED and free their seats; the
        count of seats freed."""
        return _count(await self._conn.execute(SWEEP_EXPIRED, now, limit))


async def own(conn: AsyncConnection, reservation_id: UUID, user_id: str) -> Reservation | None:
    row = (await conn.execute(SELECT_OWN, {"id": reservation_id, "user_id": user_id})).first()
    return None if row is None else Reservation(**row._mapping)


def _count(status: str) -> int:
    return int(status.rsplit(" ", 1)[-1])
