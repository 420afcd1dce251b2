"""Paying for a hold through the service layer, on an in-memory unit of work."""

from datetime import datetime, timedelta
from uuid import uuid4

import pytest

from services.booking.domain.errors import (
    AlreadyPaid,
    InsufficientPoints,
    NotFound,
    QueueTokenInvalid,
    ReservationExpired,
    ReservationNotHeld,
)
from services.booking.domain.events import PaymentCompleted
from services.booking.service_layer.payments import pay
from services.booking.service_layer.reservations import cancel_reservation
from tests.unit.fake_unit_of_work import NOW, PRICE, one_seat_held

pytestmark = pytest.mark.unit

async def test_a_payment_spends_the_points_sells_the_seat_spends_the_token_and_announces_it() -> None:
    db, held = await one_seat_held(balance=PRICE + 1)

    async with db.unit_of_work() as uow:
        payment = await pay(uow, "ann", held.id, "tok", NOW, token_concert=None)

    assert db.tables.wallets["ann"] == 1
    assert db.tables.seats[(held.schedule_id, 1)].status == "SOLD"
    assert db.tables.spent_tokens == ["tok"]
    assert db.tables.outbox == [PaymentCompleted(payment.id, held.id, payment.ticket_id, "ann",
                                                 held.schedule_id, 1, PRICE, "tok")]


async def test_without_a_queue_token_no_token_is_spent() -> None:
    db, held = await one_seat_held()

    async with db.unit_of_work() as uow:
        await pay(uow, "ann", held.id, None, NOW)

    assert db.tables.spent_tokens == []
    assert [type(event) for event in db.tables.outbox] == [PaymentCompleted]


@pytest.mark.parametrize(("balance", "paid_at", "refusal"), [
    (PRICE - 1, NOW, InsufficientPoints),
    (PRICE, NOW + timedelta(seconds=300), ReservationExpired),
])
async def test_a_refused_payment_changes_nothing_and_announces_nothing(
    balance: int, paid_at: datetime, refusal: type[Exception]
) -> None:
    db, held = await one_seat_held(balance)

    with pytest.raises(refusal):
        async with db.unit_of_work() as uow:
            await pay(uow, "ann", held.id, "tok", paid_at)

    assert db.tables.wallets["ann"] == balance
    assert db.tables.seats[(held.schedule_id, 1)].status == "HELD"
    assert db.tables.outbox == []
    assert db.tables.spent_tokens == []


async def test_a_hold_is_paid_once_only_by_its_owner_only_while_held() -> None:
    db, held = await one_seat_held(balance=3 * PRICE)
    with pytest.raises(NotFound):
        async with db.unit_of_work() as uow:
            await pay(uow, "bob", held.id, None, NOW)
    async with db.unit_of_work() as uow:
        await pay(uow, "ann", held.id, None, NOW)
    with pytest.raises(AlreadyPaid):
        async with db.unit_of_work() as uow:
            await pay(uow, "ann", held.id, None, NOW)

    db, held = await one_seat_held()
    async with db.unit_of_work() as uow:
        await cancel_reservation(uow, "ann", held.id, NOW)
    with pytest.raises(ReservationNotHeld):
        async with db.unit_of_work() as uow:
            await pay(uow, "ann", held.id, None, NOW)


async def test_a_queue_token_pays_only_for_its_own_concert() -> None:
    db, held = await one_seat_held()
    concert = db.tables.concert_of_schedule[held.schedule_id]

    with pytest.raises(QueueTokenInvalid):
        async with db.unit_of_work() as uow:
            await pay(uow, "ann", held.id, "tok", NOW, token_concert=uuid4())
    async with db.unit_of_work() as uow:
        await pay(uow, "ann", held.id, "tok", NOW, token_concert=concert)


async def test_a_seat_lost_between_the_lock_and_the_write_fails_as_expired() -> None:
    db, held = await one_seat_held()
    db.tables.seats[(held.schedule_id, 1)].reservation_id = uuid4()  # another hold took it

    with pytest.raises(ReservationExpired):
        async with db.unit_of_work() as uow:
            await pay(uow, "ann", held.id, "tok", NOW)

    assert (db.tables.wallets["ann"], db.tables.outbox) == (PRICE, [])
