"""The ticket saga's decisions, and its compensation on an in-memory unit of work."""

from dataclasses import replace
from uuid import uuid4

import pytest

from services.booking.domain import ticket_saga
from services.booking.domain.errors import BalanceLimitExceeded
from services.booking.domain.events import (
    NotificationRequested,
    PaymentCompleted,
    PaymentRefunded,
    TicketConfirmed,
)
from services.booking.domain.wallet import BALANCE_LIMIT
from services.booking.service_layer.payments import pay
from services.booking.service_layer.saga import PaymentUnknown, compensate
from tests.unit.fake_unit_of_work import NOW, PRICE, Database, one_seat_held

pytestmark = pytest.mark.unit

REFUSED = ticket_saga.venue_rejected(409, "SEAT_CONFLICT", 1)


async def paid() -> tuple[Database, PaymentCompleted]:
    db, held = await one_seat_held()
    async with db.unit_of_work() as uow:
        await pay(uow, "ann", held.id, None, NOW)
    (completed,) = db.tables.outbox
    assert isinstance(completed, PaymentCompleted)
    db.tables.outbox.clear()
    return db, completed


async def undo(db: Database, payment: PaymentCompleted, event_id=None) -> bool:
    async with db.unit_of_work() as uow:
        return await compensate(uow, event_id or uuid4(), payment, REFUSED, NOW)


async def test_a_refused_ticket_is_refunded_once_whatever_the_deliveries() -> None:
    db, payment = await paid()
    event_id = uuid4()

    assert await undo(db, payment, event_id) is True
    assert await undo(db, payment, event_id) is False  # the same event again
    assert await undo(db, payment) is False  # another event for the same payment

    assert db.tables.wallets["ann"] == PRICE
    assert db.tables.history[-1] == ("ann", "REFUND", PRICE, PRICE)
    assert db.tables.seats[(payment.schedule_id, 1)].status == "AVAILABLE"
    assert db.tables.sagas[payment.payment_id] == ticket_saga.COMPENSATED
    refunded, notice = db.tables.outbox
    assert refunded == PaymentRefunded(payment.payment_id, payment.reservation_id, payment.ticket_id,
                                       "ann", payment.schedule_id, 1, PRICE, REFUSED.reason)
    assert isinstance(notice, NotificationRequested) and notice.template == "PAYMENT_REFUNDED"


async def test_a_refund_that_would_overfill_the_wallet_changes_nothing() -> None:
    db, payment = await paid()
    db.tables.wallets["ann"] = BALANCE_LIMIT

    with pytest.raises(BalanceLimitExceeded):
        await undo(db, payment)

    assert db.tables.sagas[payment.payment_id] == "REGISTERING"
    assert db.tables.payments[payment.payment_id]["status"] == "PAID"
    assert db.tables.outbox == []


async def test_a_payment_refunded_elsewhere_closes_the_saga_without_a_second_refund() -> None:
    db, payment = await paid()
    db.tables.payments[payment.payment_id]["status"] = "REFUNDED"

    assert await undo(db, payment) is True

    assert db.tables.sagas[payment.payment_id] == ticket_saga.COMPENSATED
    assert (db.tables.wallets["ann"], db.tables.outbox) == (0, [])


async def test_an_unknown_reservation_cannot_be_compensated() -> None:
    db, payment = await paid()
    with pytest.raises(PaymentUnknown):
        async with db.unit_of_work() as uow:
            await compensate(uow, uuid4(), replace(payment, reservation_id=uuid4()), REFUSED, NOW)


def test_the_venue_verdicts_say_why_the_payment_is_undone() -> None:
    assert ticket_saga.venue_rejected(409, "SEAT_CONFLICT", 2) == ticket_saga.Refused(
        "venue rejected the ticket: HTTP 409 SEAT_CONFLICT", 2)
    assert ticket_saga.venue_rejected(422, None, 1).reason == "venue rejected the ticket: HTTP 422"
    assert ticket_saga.venue_unavailable("timed out", 3) == ticket_saga.Refused(
        "venue unavailable: timed out", 3)


def test_a_confirmed_ticket_is_announced_with_its_registration_and_a_stable_notification() -> None:
    payment = PaymentCompleted(uuid4(), uuid4(), uuid4(), "ann", uuid4(), 7, PRICE, None)

    confirmed, notice = ticket_saga.confirmation_events(payment)
    _, refund_notice = ticket_saga.refund_events(payment, "why")

    assert confirmed == TicketConfirmed(payment.ticket_id, payment.payment_id, "ann", payment.schedule_id,
                                        7, str(payment.ticket_id))
    assert notice.template == "TICKET_CONFIRMED"
    # A repeat names the same notification; the refund's is another one.
    assert notice.notification_id == ticket_saga.confirmation_events(payment)[1].notification_id
    assert refund_notice.notification_id != notice.notification_id
