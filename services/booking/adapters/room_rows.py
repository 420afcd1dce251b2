"""Waiting-room policies and their audit trail in PostgreSQL."""

from typing import Any
from uuid import UUID

import orjson
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from services.booking.domain.waiting_room import Room, RoomPolicy

RECORD_CHANGE = text("""
INSERT INTO waiting_room_changes (concert_id, changed_by, changes)
VALUES (:concert_id, :changed_by, CAST(:changes AS jsonb)) RETURNING id
""")
INSERT_ROOM = text("""
INSERT INTO waiting_rooms (concert_id, admit_per_second, max_active, queue_opens_at,
                           sale_opens_at, paused, version)
VALUES (:concert_id, :admit_per_second, :max_active, :queue_opens_at, :sale_opens_at, :paused,
        :version)
ON CONFLICT (concert_id) DO NOTHING
""")
SELECT_ROOM = text("""
SELECT admit_per_second, max_active, queue_opens_at, sale_opens_at, paused, version
  FROM waiting_rooms WHERE concert_id = :concert_id
""")
LOCK_ROOM = text(SELECT_ROOM.text + " FOR UPDATE")
UPDATE_ROOM = text("""
UPDATE waiting_rooms
   SET admit_per_second = :admit_per_second, max_active = :max_active, paused = :paused,
       version = :version
 WHERE concert_id = :concert_id
""")
SELECT_ROOMS = text("""
SELECT concert_id, admit_per_second, max_active, queue_opens_at, sale_opens_at, paused, version
  FROM waiting_rooms ORDER BY concert_id
""")


def _room(concert_id: UUID, row: Any) -> Room:
    policy = RoomPolicy(row.admit_per_second, row.max_active, row.queue_opens_at,
                        row.sale_opens_at, row.paused)
    return Room(concert_id, policy, row.version)


async def record_change(conn: AsyncConnection, concert_id: UUID, changed_by: str,
                        changes: dict[str, Any]) -> int:
    """Audit one change; its id is the version the change makes."""
    found = await conn.execute(RECORD_CHANGE, {
        "concert_id": concert_id, "changed_by": changed_by,
        "changes": orjson.dumps(changes, default=str).decode()})
    return int(found.scalar_one())


async def add_room(conn: AsyncConnection, room: Room) -> None:
    """Store a new room; a room already there is kept as it is."""
    policy = room.policy
    await conn.execute(INSERT_ROOM, {
        "concert_id": room.concert_id, "admit_per_second": policy.admit_per_second,
        "max_active": policy.max_active, "queue_opens_at": policy.queue_opens_at,
        "sale_opens_at": policy.sale_opens_at, "paused": policy.paused, "version": room.version})


async def room(conn: AsyncConnection, concert_id: UUID, *, for_update: bool = False) -> Room | None:
    row = (await conn.execute(LOCK_ROOM if for_update else SELECT_ROOM,
                              {"concert_id": concert_id})).first()
    return _room(concert_id, row) if row is not None else None


async def store_policy(conn: AsyncConnection, room: Room) -> None:
    policy = room.policy
    await conn.execute(UPDATE_ROOM, {
        "concert_id": room.concert_id, "admit_per_second": policy.admit_per_second,
        "max_active": policy.max_active, "paused": policy.paused, "version": room.version})


async def rooms(conn: AsyncConnection) -> list[Room]:
    return [_room(row.concert_id, row) for row in await conn.execute(SELECT_ROOMS)]
