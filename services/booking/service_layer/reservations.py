"""Holding, reading and cancelling seat reservations."""

from datetime import datetime
from uuid import UUID, uuid4

from sqlalchemy.ext.asyncio import AsyncConnection

from services.booking.adapters import reservations
from services.booking.domain.errors import NotFound
from services.booking.domain.seat_hold import HoldPolicy, Reservation, check_cancellable
from services.booking.service_layer.unit_of_work import UnitOfWork


async def hold_seat(
    uow: UnitOfWork, policy: HoldPolicy, user_id: str, schedule_id: UUID, seat_no: int,
    now: datetime,
) -> Reservation:
    planned = policy.plan(uuid4(), user_id, schedule_id, seat_no, now)
    # The seat first: most contenders lose it, and a refusal then costs one statement.
    held = policy.taken(planned, await uow.reservations.take_seat(planned, now))
    # Counted after the user's row lock, the new hold included; over the limit, the
    # unit of work's rollback gives the seat back.
    policy.check_limit(await uow.reservations.live_holds(user_id, schedule_id, now))
    return held


async def get_reservation(conn: AsyncConnection, user_id: str, reservation_id: UUID) -> Reservation:
    found = await reservations.own(conn, reservation_id, user_id)
    if found is None:
        raise NotFound(f"no reservation {reservation_id}")
    return found


async def cancel_reservation(uow: UnitOfWork, user_id: str, reservation_id: UUID, now: datetime) -> None:
    found = await uow.reservations.lock_own(reservation_id, user_id)
    if found is None:
        raise NotFound(f"no reservation {reservation_id}")
    check_cancellable(found, now)
    await uow.reservations.release(found, "CANCELLED")
