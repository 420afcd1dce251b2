"""Waiting-room policies and their audit trail in PostgreSQL."""

from typing import Any
from uuid import UUID

import asyncpg
import orjson

from services.booking.domain.waiting_room import Room, RoomPolicy

RECORD_CHANGE = """
INSERT INTO waiting_room_changes (concert_id, changed_by, changes)
VALUES ($1, $2, CAST($3 AS jsonb)) RETURNING id
"""
INSERT_ROOM = """
INSERT INTO waiting_rooms (concert_id, admit_per_second, max_active, queue_opens_at,
                           sale_opens_at, paused, version)
VALUES ($1, $2, $3, $4, $5, $6, $7)
ON CONFLICT (concert_id) DO NOTHING
"""
SELECT_ROOM = """
SELECT admit_per_second, max_active, queue_opens_at, sale_opens_at, paused, version
  FROM waiting_rooms WHERE concert_id = $1
"""
LOCK_ROOM = SELECT_ROOM + " FOR UPDATE"
UPDATE_ROOM = """
UPDATE waiting_rooms SET admit_per_second = $2, max_active = $3, paused = $4, version = $5
 WHERE concert_id = $1
"""
SELECT_ROOMS = """
SELECT concert_id, admit_per_second, max_active, queue_opens_at, sale_opens_at, paused, version
  FROM waiting_rooms ORDER BY concert_id
"""


def _room(concert_id: UUID, row: Any) -> Room:
    policy = RoomPolicy(row["admit_per_second"], row["max_active"], row["queue_opens_at"],
                        row["sale_opens_at"], row["paused"])
    return Room(concert_id, policy, row["version"])


class PostgresRooms:
    """Waiting-room policies inside a unit of work's transaction."""

    __slots__ = ("_conn",)

    def __init__(self, conn: asyncpg.Connection) -> None:
        self._conn = conn

    async def record_change(self, concert_id: UUID, changed_by: str, changes: dict[str, Any]) -> int:
        """Audit one change; its id is the version the change makes."""
        changed = orjson.dumps(changes, default=str).decode()
        return int(await self._conn.fetchval(RECORD_CHANGE, concert_id, changed_by, changed))

    async def add_room(self, room: Room) -> None:
        """Store a new room; a room already there is kept as it is."""
        policy = room.policy
        await self._conn.execute(
            INSERT_ROOM, room.concert_id, policy.admit_per_second, policy.max_active,
            policy.queue_opens_at, policy.sale_opens_at, policy.paused, room.version)

    async def room(self, concert_id: UUID, *, for_update: bool = False) -> Room | None:
        row = await self._conn.fetchrow(LOCK_ROOM if for_update else SELECT_ROOM, concert_id)
        return _room(concert_id, row) if row is not None else None

    async def store_policy(self, room: Room) -> None:
        policy = room.policy
        await self._conn.execute(UPDATE_ROOM, room.concert_id, policy.admit_per_second,
                                 policy.max_active, policy.paused, room.version)


async def rooms(conn: asyncpg.Connection) -> list[Room]:
    return [_room(row["concert_id"], row) for row in await conn.fetch(SELECT_ROOMS)]
