"""Admin catalogue changes and public browsing."""

from datetime import datetime
from typing import Any
from uuid import UUID, uuid4

import asyncpg
from sqlalchemy.ext.asyncio import AsyncConnection

from services.booking.adapters import catalogue
from services.booking.domain.errors import NotFound
from services.booking.domain.waiting_room import Room, RoomPolicy
from services.booking.service_layer.waiting_rooms import open_room


async def create_concert(
    conn: AsyncConnection, title: str, venue: str, schedules: list[dict[str, Any]],
    room: RoomPolicy, by: str,
) -> tuple[dict[str, Any], Room]:
    """The new concert with its schedules, and its waiting room."""
    concert_id = uuid4()
    planned = [{**schedule, "id": uuid4()} for schedule in schedules]
    await catalogue.add_concert(conn, concert_id, title, venue, planned)
    opened = await open_room(conn, concert_id, room, by)
    return {"id": concert_id, "title": title, "venue": venue, "schedules": planned}, opened


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
