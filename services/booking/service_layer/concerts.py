"""Admin catalogue changes and public browsing."""

import dataclasses
import logging
from datetime import datetime
from typing import Any
from uuid import UUID, uuid4

import asyncpg
from redis.exceptions import RedisError
from sqlalchemy.ext.asyncio import AsyncConnection

from services.booking.adapters import catalogue
from services.booking.adapters.waiting_room import WaitingRooms
from services.booking.domain.errors import NotFound
from services.booking.domain.waiting_room import RoomPolicy
from services.booking.service_layer.unit_of_work import StartUnitOfWork
from services.booking.service_layer.waiting_rooms import open_room

log = logging.getLogger(__name__)


async def create_concert(
    start: StartUnitOfWork, rooms: WaitingRooms, title: str, venue: str,
    schedules: list[dict[str, Any]], room: RoomPolicy, by: str,
) -> dict[str, Any]:
    """The new concert with its schedules and its waiting room's policy."""
    concert_id = uuid4()
    planned = [{**schedule, "id": uuid4()} for schedule in schedules]
    async with start() as uow:
        await uow.catalogue.add_concert(concert_id, title, venue, planned)
        opened = await open_room(uow, concert_id, room, by)
    try:
        await rooms.publish(opened)
    except RedisError as error:  # the first token asked for installs it from PostgreSQL
        log.warning("waiting room of concert %s not yet in Redis: %s", concert_id, error)
    return {"id": concert_id, "title": title, "venue": venue, "schedules": planned,
            "waiting_room": dataclasses.asdict(room)}


async def list_schedules(
    conn: AsyncConnection, concert_id: UUID, now: datetime
) -> list[dict[str, Any]]:
    found = await catalogue.schedules_of(conn, concert_id, now)
    if not found and not await catalogue.concert_exists(conn, concert_id):
        raise NotFound(f"no concert {concert_id}")
    return found


async def list_seats(
    conn: asyncpg.Connection, schedule_id: UUID, now: datetime
) -> list[tuple[int, int, str]]:
    """(seat_no, price, status) of every seat of the schedule."""
    seats = await catalogue.seats_of(conn, schedule_id, now)
    if not seats:
        raise NotFound(f"no schedule {schedule_id}")
    return seats
