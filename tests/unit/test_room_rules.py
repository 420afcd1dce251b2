"""A concert's waiting room in the service layer: created with the concert, or with the
defaults for a concert from before rooms existed; every change audited."""

from uuid import uuid4

import pytest

from services.booking.domain.errors import NotFound
from services.booking.domain.waiting_room import Room, RoomPolicy
from services.booking.service_layer.waiting_rooms import SYSTEM, open_room, room_of
from tests.unit.fake_unit_of_work import Database

pytestmark = pytest.mark.unit

DEFAULTS = RoomPolicy(admit_per_second=5, max_active=100)


async def test_a_new_rooms_creation_is_its_first_audited_change() -> None:
    db, concert = Database(), uuid4()
    policy = RoomPolicy(admit_per_second=9, max_active=3, paused=True)

    async with db.unit_of_work() as uow:
        room = await open_room(uow, concert, policy, "admin-1")

    assert db.tables.rooms[concert] == room == Room(concert, policy, 1)
    (change,) = db.tables.room_changes
    assert change[:2] == (concert, "admin-1") and change[2]["created"]["max_active"] == 3


async def test_a_concert_without_a_room_gets_the_defaults_once() -> None:
    db, concert = Database(), uuid4()
    db.tables.concerts.add(concert)

    first = await room_of(db.unit_of_work, concert, DEFAULTS)
    again = await room_of(db.unit_of_work, concert, RoomPolicy(admit_per_second=1, max_active=1))

    assert first == again == Room(concert, DEFAULTS, 1)
    assert [(who, by) for who, by, _ in db.tables.room_changes] == [(concert, SYSTEM)]


async def test_an_unknown_concert_has_no_room() -> None:
    db = Database()
    with pytest.raises(NotFound):
        await room_of(db.unit_of_work, uuid4(), DEFAULTS)
    assert db.tables.rooms == {}
