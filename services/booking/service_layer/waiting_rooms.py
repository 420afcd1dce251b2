"""Concert waiting rooms: their policies in PostgreSQL (audited), their lines in Redis."""

import dataclasses
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from services.booking.adapters.waiting_room import Issued, RoomUnknown, WaitingRooms
from services.booking.domain.errors import NotFound
from services.booking.domain.waiting_room import Room, RoomPolicy, room_status
from services.booking.service_layer.unit_of_work import StartUnitOfWork, UnitOfWork

SYSTEM = "system"  # who "changed" a room that got the defaults on first use


async def open_room(uow: UnitOfWork, concert_id: UUID, policy: RoomPolicy, by: str) -> Room:
    """Store a new concert's room, its creation audited as its first change."""
    version = await uow.rooms.record_change(concert_id, by, {"created": dataclasses.asdict(policy)})
    room = Room(concert_id, policy, version)
    await uow.rooms.add_room(room)
    return room


async def room_of(start: StartUnitOfWork, concert_id: UUID, defaults: RoomPolicy) -> Room:
    """The concert's room; a concert from before rooms existed gets one with the defaults."""
    async with start() as uow:
        found = await uow.rooms.room(concert_id)
        if found is None:
            if not await uow.catalogue.concert_exists(concert_id):
                raise NotFound(f"no concert {concert_id}")
            await open_room(uow, concert_id, defaults, SYSTEM)
            found = await uow.rooms.room(concert_id)
    assert found is not None
    return found


async def issue_token(start: StartUnitOfWork, rooms: WaitingRooms, concert_id: UUID, user_id: str,
                      defaults: RoomPolicy) -> Issued:
    """The user's token for the concert's room; a room Redis does not know is installed first."""
    try:
        return await rooms.issue(concert_id, user_id)
    except RoomUnknown:
        await rooms.publish(await room_of(start, concert_id, defaults))
        return await rooms.issue(concert_id, user_id)


async def describe(start: StartUnitOfWork, rooms: WaitingRooms, concert_id: UUID,
                   defaults: RoomPolicy) -> dict[str, Any]:
    """The room as GET /concerts/{id}/waiting-room shows it."""
    room = await room_of(start, concert_id, defaults)
    counts = await rooms.counts(concert_id)
    return {"concert_id": concert_id, "status": room_status(room.policy, datetime.now(UTC)),
            "waiting": counts.waiting, "active": counts.active,
            **dataclasses.asdict(room.policy)}


async def change_room(start: StartUnitOfWork, rooms: WaitingRooms, concert_id: UUID,
                      changes: dict[str, Any], by: str, defaults: RoomPolicy) -> Room:
    """Apply an admin's change, audited, and hand it to admission (which reads it next tick)."""
    await room_of(start, concert_id, defaults)
    async with start() as uow:
        current = await uow.rooms.room(concert_id, for_update=True)
        assert current is not None
        version = await uow.rooms.record_change(concert_id, by, changes)
        changed = Room(concert_id, current.policy.changed(**changes), version)
        await uow.rooms.store_policy(changed)
        # Inside the transaction: when Redis cannot take it, nothing is changed (503).
        await rooms.publish(changed)
    return changed
