"""Seat holds: take one, read it, give it back."""

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from uuid import UUID

from fastapi import APIRouter, Response
from redis.exceptions import RedisError

from services.booking.domain.errors import SeatUnavailable
from services.booking.domain.seat_hold import Reservation
from services.booking.entrypoints.api.deps import (
    CallerDep,
    QueueTokenHeader,
    ServicesDep,
    require_active_token,
)
from services.booking.entrypoints.api.schemas import HoldIn, ReservationOut
from services.booking.entrypoints.api.services import Services
from services.booking.service_layer import reservations

log = logging.getLogger(__name__)
router = APIRouter(prefix="/reservations", tags=["reservations"])


@asynccontextmanager
async def crowd_control(services: Services, schedule_id: UUID, seat_no: int) -> AsyncIterator[None]:
    """Turn away everyone but one contender per seat before they reach the database."""
    locks = services.seat_locks
    if locks is None:
        yield
        return
    key = locks.key(schedule_id, seat_no)
    owner = await locks.acquire(key)
    if owner is None:
        raise SeatUnavailable(f"seat {seat_no} is being taken by someone else")
    try:
        yield
    finally:
        try:
            await locks.release(key, owner)
        except RedisError:
            # The hold is committed either way; the lock's lease runs out by itself.
            log.warning("seat lock %s not released: Redis unavailable", key)


def _out(reservation: Reservation, now: datetime) -> ReservationOut:
    return ReservationOut(
        id=reservation.id, schedule_id=reservation.schedule_id, seat_no=reservation.seat_no,
        price=reservation.price, status=reservation.status_at(now),
        expires_at=reservation.expires_at,
    )


@router.post("", status_code=201, response_model=ReservationOut)
async def hold(
    body: HoldIn, caller: CallerDep, services: ServicesDep, x_queue_token: QueueTokenHeader = None
) -> ReservationOut:
    await require_active_token(services, caller, x_queue_token)
    settings = services.settings
    async with crowd_control(services, body.schedule_id, body.seat_no):
        now = datetime.now(UTC)
        async with services.engine.begin() as conn:
            held = await reservations.hold_seat(
                conn, caller.user_id, body.schedule_id, body.seat_no, now,
                settings.hold_ttl_seconds, settings.max_holds_per_user,
            )
    return _out(held, now)


@router.get("/{reservation_id}", response_model=ReservationOut)
async def get(reservation_id: UUID, caller: CallerDep, services: ServicesDep) -> ReservationOut:
    async with services.engine.connect() as conn:
        found = await reservations.get_reservation(conn, caller.user_id, reservation_id)
    return _out(found, datetime.now(UTC))


@router.delete("/{reservation_id}", status_code=204, response_class=Response)
async def cancel(
    reservation_id: UUID, caller: CallerDep, services: ServicesDep,
    x_queue_token: QueueTokenHeader = None,
) -> Response:
    await require_active_token(services, caller, x_queue_token)
    async with services.engine.begin() as conn:
        await reservations.cancel_reservation(
            conn, caller.user_id, reservation_id, datetime.now(UTC)
        )
    return Response(status_code=204)
