"""The saga's last step against real PostgreSQL: concurrent twins confirm or refund once."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from services.booking.adapters.database import create_engine
from services.booking.adapters.venue_client import VenueRegistration
from services.booking.config import Settings
from services.booking.domain.events import PaymentCompleted
from services.booking.service_layer.saga import TicketSaga
from services.common.http_resilience import Accepted, Outcome, Rejected
from tests.support import Booking, sql

pytestmark = pytest.mark.integration
PRICE = 10_000


class Venue:
    """A venue that answers after a pause, so that twin deliveries overlap."""

    def __init__(self, accept: bool) -> None:
        self.accept = accept
        self.calls: list[str] = []

    async def register(self, registration: VenueRegistration, *, trace_id: str | None = None) -> Outcome:
        self.calls.append(registration.registration_id)
        await asyncio.sleep(0.05)
        if self.accept:
            return Accepted(201, {"id": registration.registration_id}, 1)
        return Rejected(409, {"code": "SEAT_CONFLICT"}, 1)


@pytest.fixture
async def engine(settings: Settings) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(settings)
    yield engine
    await engine.dispose()


async def run_twins(saga: TicketSaga, event: PaymentCompleted, twins: int) -> Counter[str]:
    outcomes = await asyncio.gather(*(
        saga.on_payment_completed(uuid.uuid4(), event, None) for _ in range(twins)))
    return Counter(outcomes)


async def outbox_types(settings: Settings, payment_id: uuid.UUID) -> Counter[str]:
    rows = await sql(settings, "SELECT event_type FROM outbox WHERE payload->>'payment_id' = :id",
                     id=str(payment_id))
    return Counter(row["event_type"] for row in rows)


async def state(settings: Settings, event: PaymentCompleted, user: str) -> dict[str, Any]:
    (row,) = await sql(settings, """
        SELECT p.status AS payment, t.status AS ticket, s.status AS seat, w.balance,
               (SELECT count(*) FROM point_history h WHERE h.payment_id = p.id AND h.type = 'REFUND')
                   AS refunds,
               (SELECT status FROM ticket_sagas g WHERE g.payment_id = p.id) AS saga
          FROM payments p JOIN tickets t ON t.payment_id = p.id
          JOIN seats s ON s.schedule_id = t.schedule_id AND s.seat_no = t.seat_no
          JOIN wallets w ON w.user_id = p.user_id
         WHERE p.id = :id""", id=event.payment_id)
    return row


async def test_twin_deliveries_refund_exactly_once(
    booking: Booking, engine: AsyncEngine, settings: Settings
) -> None:
    event = await booking.paid(PRICE, "saga")
    user = event.user_id
    saga = TicketSaga(engine, Venue(accept=False))

    outcomes = await run_twins(saga, event, 5)

    assert outcomes == Counter({"compensated": 1, "duplicate": 4})
    assert await state(settings, event, user) == {
        "payment": "REFUNDED", "ticket": "VOID", "seat": "AVAILABLE", "balance": PRICE,
        "refunds": 1, "saga": "COMPENSATED",
    }
    types = await outbox_types(settings, event.payment_id)
    assert types["PaymentRefunded"] == 1 and types["NotificationRequested"] == 1
    assert await run_twins(saga, event, 2) == Counter({"duplicate": 2})


async def test_twin_deliveries_confirm_exactly_once(
    booking: Booking, engine: AsyncEngine, settings: Settings
) -> None:
    event = await booking.paid(PRICE, "saga")
    user = event.user_id
    venue = Venue(accept=True)
    saga = TicketSaga(engine, venue)

    outcomes = await run_twins(saga, event, 5)

    assert outcomes == Counter({"confirmed": 1, "duplicate": 4})
    assert set(venue.calls) == {str(event.ticket_id)}  # one registration id, deduplicated by the venue
    found = await state(settings, event, user)
    assert (found["payment"], found["ticket"], found["seat"], found["refunds"]) == (
        "PAID", "CONFIRMED", "SOLD", 0)
    types = await outbox_types(settings, event.payment_id)
    assert types["TicketConfirmed"] == 1 and types["NotificationRequested"] == 1


async def test_deliveries_after_the_saga_confirmed_are_marked_and_change_nothing(
    booking: Booking, engine: AsyncEngine, settings: Settings
) -> None:
    """The claim statement finds the saga finished: it marks the event processed and stops,
    whether the event is one already handled or a new one for the same payment."""
    event = await booking.paid(PRICE, "saga")
    venue = Venue(accept=True)
    saga = TicketSaga(engine, venue)
    first = uuid.uuid4()
    assert await saga.on_payment_completed(first, event, None) == "confirmed"

    later = [uuid.uuid4(), uuid.uuid4()]
    outcomes = await asyncio.gather(saga.on_payment_completed(first, event, None),
                                    *(saga.on_payment_completed(e, event, None) for e in later))

    assert outcomes == ["duplicate"] * 3
    assert len(venue.calls) == 1
    marked = await sql(settings, "SELECT event_id FROM processed_events WHERE consumer = 'ticket-saga'"
                                 " AND event_id = ANY(:ids)", ids=[first, *later])
    assert {row["event_id"] for row in marked} == {first, *later}
    types = await outbox_types(settings, event.payment_id)
    assert types["TicketConfirmed"] == 1 and types["NotificationRequested"] == 1
    (row,) = await sql(settings, "SELECT passes, status FROM ticket_sagas WHERE payment_id = :id",
                       id=event.payment_id)
    assert row == {"passes": 1, "status": "CONFIRMED"}
