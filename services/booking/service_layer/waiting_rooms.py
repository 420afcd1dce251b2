"""Concert waiting rooms: their policies in PostgreSQL (audited), their lines in Redis."""

import dataclasses
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from services.booking.adapters import catalogue, room_rows
from services.booking.adapters.waiting_room import Issued, RoomUnknown, WaitingRooms
from services.booking.domain.errors import NotFound
from services.booking.domain.waiting_room import Room, RoomPolicy, room_status

SYSTEM = "system"  # who "changed" a room that got the defaults on first use


async def open_room(conn: AsyncConnection, concert_id: UUID, policy: RoomPolicy, by: str) -> Room:
    """Store a new concert's room, its creation audited as its first change."""
    version = await room_rows.record_change(conn, concert_id, by, {"created": dataclasses.asdict(policy)})
    room = Room(concert_id, policy, version)
    await room_rows.add_room(conn, room)
    return room


async def room_of(engine: AsyncEngine, concert_id: UUID, defaults: RoomPolicy) -> Room:
    """The concert's room; a concert from before rooms existed gets one with the defaults."""
    async with engine.begin() as conn:
        found = await room_rows.room(conn, concert_id)
        if found is None:
            if not await catalogue.concert_exists(conn, concert_id):
                raise NotFound(f"no concert {concert_id}")
            await open_room(conn, concert_id, defaults, SYSTEM)
            found = await room_rows.room(conn, concert_id)
    assert found is not None
    return found


async def issue_token(engine: AsyncEngine, rooms: WaitingRooms, concert_id: UUID, user_id: str,
                      defaults: RoomPolicy) -> Issued:
    """The user's token for the concert's room; a room Redis does not know is installed first."""
    try:
        return await rooms.issue(concert_id, user_id)
    except RoomUnknown:
        await rooms.publish(await room_of(engine, concert_id, defaults))
        return await rooms.issue(concert_id, user_id)


async def describe(engine: AsyncEngine, rooms: WaitingRooms, concert_id: UUID,
                   defaults: RoomPolicy) -> dict[str, Any]:
    """The room as GET /concerts/{id}/waiting-room shows it."""
    room = await room_of(engine, concert_id, defaults)
    counts = await rooms.counts(concert_id)
    return {"concert_id": concert_id, "status": room_status(room.policy, datetime.now(UTC)),
            "waiting": counts.waiting, "active": counts.active,
            **dataclasses.asdict(room.policy)}


async def change_room(engine: AsyncEngine, rooms: WaitingRooms, concert_id: UUID,
                      changes: dict[str, Any], by: str, defaults: RoomPolicy) -> Room:
    """Apply an admin's change, audited, and hand it to admission (which reads it next tick)."""
    await room_of(engine, concert_id, defaults)
    async with engine.begin() as conn:
        current = await room_rows.room(conn, concert_id, for_update=True)
        assert current is not None
        version = await room_rows.record_change(conn, concert_id, by, changes)
        changed = Room(concert_id, current.policy.changed(**changes), version)
        await room_rows.store_policy(conn, changed)
        # Inside the transaction: when Redis cannot take it, nothing is changed (503).
        await rooms.publish(changed)
    return changed
