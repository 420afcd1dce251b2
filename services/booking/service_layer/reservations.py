"""Holding, reading and cancelling seat reservations."""

from dataclasses import replace
from datetime import datetime
from uuid import UUID, uuid4

import asyncpg
from sqlalchemy.ext.asyncio import AsyncConnection

from services.booking.adapters import reservations
from services.booking.domain.errors import NotFound, SeatUnavailable
from services.booking.domain.seat_hold import (
    Reservation,
    check_cancellable,
    check_hold_limit,
    hold_expiry,
)


async def hold_seat(
    conn: asyncpg.Connection, user_id: str, schedule_id: UUID, seat_no: int, now: datetime,
    ttl_seconds: int, max_holds: int,
) -> Reservation:
    planned = Reservation(
        id=uuid4(), user_id=user_id, schedule_id=schedule_id, seat_no=seat_no, price=0,
        status="HELD", expires_at=hold_expiry(now, ttl_seconds),
    )
    # The seat first: most contenders lose it, and a refusal then costs one statement.
    taken = await reservations.take_seat(conn, planned, now)
    if taken.price is None:
        if not taken.seat_exists:
            raise NotFound(f"no seat {seat_no} in schedule {schedule_id}")
        raise SeatUnavailable(f"seat {seat_no} is not available")
    # Counted after the user's row lock, the new hold included; over the limit, the
    # caller's rollback gives the seat back.
    live = await reservations.live_holds(conn, user_id, schedule_id, now)
    check_hold_limit(live - 1, max_holds)
    return replace(planned, price=taken.price)


async def get_reservation(conn: AsyncConnection, user_id: str, reservation_id: UUID) -> Reservation:
    found = await reservations.own(conn, reservation_id, user_id)
    if found is None:
        raise NotFound(f"no reservation {reservation_id}")
    return found


async def cancel_reservation(
    conn: AsyncConnection, user_id: str, reservation_id: UUID, now: datetime
) -> None:
    found = await reservations.own(conn, reservation_id, user_id, lock=True)
    if found is None:
        raise NotFound(f"no reservation {reservation_id}")
    check_cancellable(found, now)
    await reservations.release(conn, found, "CANCELLED")
