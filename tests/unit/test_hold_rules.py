"""Seat holds through the service layer, on an in-memory unit of work: limits and expiry."""

from datetime import datetime, timedelta
from uuid import uuid4

import pytest

from services.booking.domain.errors import (
    HoldLimitReached,
    NotFound,
    ReservationNotHeld,
    SeatUnavailable,
)
from services.booking.domain.seat_hold import HoldPolicy
from services.booking.service_layer.reservations import cancel_reservation, hold_seat
from tests.unit.fake_unit_of_work import NOW, Database

pytestmark = pytest.mark.unit

POLICY = HoldPolicy(ttl_seconds=300, max_holds=2)


async def hold(db: Database, user: str, schedule, seat_no: int, now: datetime = NOW):
    async with db.unit_of_work() as uow:
        return await hold_seat(uow, POLICY, user, schedule, seat_no, now)


async def test_a_hold_takes_the_seat_at_its_price_until_the_ttl_runs_out() -> None:
    db = Database()
    schedule = db.add_schedule(seats=3, price=12_000)

    held = await hold(db, "ann", schedule, 1)

    assert (held.price, held.status, held.expires_at) == (12_000, "HELD", NOW + timedelta(seconds=300))
    assert held.status_at(NOW + timedelta(seconds=299)) == "HELD"
    assert held.status_at(NOW + timedelta(seconds=300)) == "EXPIRED"
    assert db.tables.seats[(schedule, 1)].status == "HELD"


async def test_a_held_seat_is_refused_in_one_statement_until_its_hold_expires() -> None:
    db = Database()
    schedule = db.add_schedule(seats=1, price=1)
    await hold(db, "ann", schedule, 1)
    before = db.statements

    with pytest.raises(SeatUnavailable):
        await hold(db, "bob", schedule, 1, NOW + timedelta(seconds=299))

    assert db.statements - before == 1  # no hold count for a refusal
    assert (await hold(db, "bob", schedule, 1, NOW + timedelta(seconds=300))).user_id == "bob"


async def test_a_seat_that_does_not_exist_is_not_found() -> None:
    db = Database()
    schedule = db.add_schedule(seats=1, price=1)

    with pytest.raises(NotFound):
        await hold(db, "ann", schedule, 2)
    with pytest.raises(NotFound):
        await hold(db, "ann", uuid4(), 1)


async def test_a_hold_beyond_the_limit_is_refused_and_gives_its_seat_back() -> None:
    db = Database()
    schedule = db.add_schedule(seats=4, price=1)
    await hold(db, "ann", schedule, 1)
    await hold(db, "ann", schedule, 2)

    with pytest.raises(HoldLimitReached):
        await hold(db, "ann", schedule, 3)

    assert db.tables.seats[(schedule, 3)].status == "AVAILABLE"
    # Another user's holds, or the same user's expired ones, do not count.
    await hold(db, "bob", schedule, 3)
    await hold(db, "ann", schedule, 4, NOW + timedelta(seconds=300))


async def test_only_a_live_hold_can_be_cancelled() -> None:
    db = Database()
    schedule = db.add_schedule(seats=2, price=1)
    held = await hold(db, "ann", schedule, 1)
    expired = await hold(db, "ann", schedule, 2)

    with pytest.raises(NotFound):  # not the caller's
        async with db.unit_of_work() as uow:
            await cancel_reservation(uow, "bob", held.id, NOW)
    async with db.unit_of_work() as uow:
        await cancel_reservation(uow, "ann", held.id, NOW)
    with pytest.raises(ReservationNotHeld):
        async with db.unit_of_work() as uow:
            await cancel_reservation(uow, "ann", expired.id, NOW + timedelta(seconds=300))

    assert db.tables.reservations[held.id].status == "CANCELLED"
    assert db.tables.seats[(schedule, 1)].status == "AVAILABLE"
    with pytest.raises(ReservationNotHeld):
        async with db.unit_of_work() as uow:
            await cancel_reservation(uow, "ann", held.id, NOW)
