"""Concerts, schedules and seats in PostgreSQL."""

from collections.abc import Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

INSERT_CONCERT = "INSERT INTO concerts (id, title, venue) VALUES ($1, $2, $3)"
INSERT_SCHEDULE = """
INSERT INTO schedules (id, concert_id, starts_at, seat_count, price) VALUES ($1, $2, $3, $4, $5)
"""
INSERT_SEATS = "INSERT INTO seats (schedule_id, seat_no) SELECT $1, generate_series(1, $2)"

SELECT_CONCERTS = text("SELECT id, title, venue FROM concerts ORDER BY created_at, id")
CONCERT_EXISTS = "SELECT 1 FROM concerts WHERE id = $1"

# A hold past its expiry counts as AVAILABLE before the sweeper gets to it.
SELECT_SCHEDULES = text("""
SELECT sc.id, sc.starts_at, sc.seat_count, sc.price,
       (SELECT count(*) FROM seats s
         WHERE s.schedule_id = sc.id
           AND (s.status = 'AVAILABLE' OR (s.status = 'HELD' AND s.held_until <= :now))
       ) AS available_seats
  FROM schedules sc
 WHERE sc.concert_id = :concert_id
 ORDER BY sc.starts_at, sc.id
""")
# Every schedule has seats (seat_count >= 1): no rows means no such schedule.
SELECT_SEATS = """
SELECT s.seat_no, sc.price,
       CASE WHEN s.status = 'HELD' AND s.held_until <= $2 THEN 'AVAILABLE' ELSE s.status END AS status
  FROM seats s JOIN schedules sc ON sc.id = s.schedule_id
 WHERE s.schedule_id = $1 ORDER BY s.seat_no
"""


class PostgresCatalogue:
    """Concerts written inside a unit of work's transaction."""

    __slots__ = ("_conn",)

    def __init__(self, conn: asyncpg.Connection) -> None:
        self._conn = conn

    async def add_concert(self, concert_id: UUID, title: str, venue: str,
                          schedules: Sequence[dict[str, Any]]) -> None:
        await self._conn.execute(INSERT_CONCERT, concert_id, title, venue)
        for schedule in schedules:
            await self._conn.execute(
                INSERT_SCHEDULE, schedule["id"], concert_id, schedule["starts_at"],
                schedule["seat_count"], schedule["price"])
            await self._conn.execute(INSERT_SEATS, schedule["id"], schedule["seat_count"])

    async def concert_exists(self, concert_id: UUID) -> bool:
        return await self._conn.fetchval(CONCERT_EXISTS, concert_id) is not None


async def concerts(conn: AsyncConnection) -> list[dict[str, Any]]:
    rows = await conn.execute(SELECT_CONCERTS)
    return [dict(row._mapping) for row in rows]


async def concert_exists(conn: AsyncConnection, concert_id: UUID) -> bool:
    return (await conn.exec_driver_sql(CONCERT_EXISTS, (concert_id,))).first() is not None


async def schedules_of(
    conn: AsyncConnection, concert_id: UUID, now: datetime
) -> list[dict[str, Any]]:
    rows = await conn.execute(SELECT_SCHEDULES, {"concert_id": concert_id, "now": now})
    return [dict(row._mapping) for row in rows]


async def seats_of(conn: asyncpg.Connection, schedule_id: UUID, now: datetime) -> list[tuple[int, int, str]]:
    """(seat_no, price, status) of the schedule's seats; empty when there is no such schedule.

    On asyncpg directly, as tuples: a rush reads this map thousands of times a second.
    """
    rows = await conn.fetch(SELECT_SEATS, schedule_id, now)
    return [(row[0], row[1], row[2]) for row in rows]
