"""Seat holds: take one, read it, give it back."""

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from uuid import UUID

from redis.exceptions import RedisError

from services.booking.domain.errors import (
    HoldLimitReached,
    NotFound,
    ReservationNotHeld,
    SeatUnavailable,
)
from services.booking.domain.seat_hold import Reservation
from services.booking.entrypoints.api.guards import QUEUE_GUARD, require_active_token
from services.booking.entrypoints.api.http import Call, Endpoint, Link
from services.booking.entrypoints.api.messages import Response
from services.booking.entrypoints.api.schemas import HoldIn, ReservationOut
from services.booking.entrypoints.api.services import Services
from services.booking.service_layer import reservations

log = logging.getLogger(__name__)


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


async def hold(call: Call) -> ReservationOut:
    body = await call.body(HoldIn)
    services, user_id = call.services, call.user.user_id
    concert_id = await services.concerts.of_schedule(body.schedule_id)
    await require_active_token(services, call.user, call.header("x-queue-token"), concert_id)
    async with crowd_control(services, body.schedule_id, body.seat_no):
        now = datetime.now(UTC)
        async with services.unit_of_work() as uow:
            held = await reservations.hold_seat(
                uow, services.hold_policy, user_id, body.schedule_id, body.seat_no, now)
    return _out(held, now)


async def get(call: Call) -> ReservationOut:
    reservation_id = call.path_id("reservation_id")
    async with call.services.reads.connect() as conn:
        found = await reservations.get_reservation(conn, call.user.user_id, reservation_id)
    return _out(found, datetime.now(UTC))


async def cancel(call: Call) -> Response:
    reservation_id = call.path_id("reservation_id")
    concert_id = await call.services.concerts.of_reservation(reservation_id, call.user.user_id)
    await require_active_token(call.services, call.user, call.header("x-queue-token"), concert_id)
    async with call.services.unit_of_work() as uow:
        await reservations.cancel_reservation(uow, call.user.user_id, reservation_id, datetime.now(UTC))
    return Response(status=204)


CREATED = "$response.body#/id"
ENDPOINTS = [
    Endpoint("POST", "/reservations", hold, 201, ReservationOut, operation_id="holdSeat", body=HoldIn,
             headers=("X-Queue-Token",), errors=(*QUEUE_GUARD, NotFound, SeatUnavailable, HoldLimitReached),
             tag="reservations", summary="Hold a seat for HOLD_TTL_SECONDS",
             links=(Link("read", "getReservation", {"reservation_id": CREATED}),
                    Link("cancel", "cancelReservation", {"reservation_id": CREATED}),
                    Link("pay", "payReservation", body={"reservation_id": CREATED}))),
    Endpoint("GET", "/reservations/{reservation_id}", get, operation_id="getReservation",
             response=ReservationOut, errors=(NotFound,),
             tag="reservations", summary="One of the caller's reservations"),
    Endpoint("DELETE", "/reservations/{reservation_id}", cancel, 204, operation_id="cancelReservation",
             headers=("X-Queue-Token",),
             errors=(*QUEUE_GUARD, NotFound, ReservationNotHeld), tag="reservations",
             summary="Give a held seat back"),
]
