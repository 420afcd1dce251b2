"""Statements each hot path sends to PostgreSQL, counted on the real API and saga.

Each statement is one round trip, BEGIN and COMMIT included. These are the budgets the
benchmarks were tuned with: a refactoring that adds a round trip to a hold, a payment or
the saga fails here, before any benchmark runs.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.ext.asyncio import AsyncEngine

from services.booking.adapters.database import MeasuredPool, create_engine
from services.booking.config import Settings
from services.booking.service_layer.saga import TicketSaga
from tests.integration.test_saga_compensation import Venue
from tests.support import Booking, new_user

pytestmark = pytest.mark.integration
PRICE = 10_000


# The queue worker's housekeeping, which runs beside the session's API: not ours to count.
BACKGROUND = frozenset({"sweep_forever"})


class Statements(list[str]):
    """Every statement sent on a connection of a booking engine (API or worker) meanwhile:
    those asyncpg runs itself, BEGIN and COMMIT included, and those SQLAlchemy runs."""

    def __init__(self) -> None:
        super().__init__()
        self.watched: dict[int, tuple[Any, Any]] = {}  # id: the driver and its logger
        self.background: set[int] = set()  # connections taken by background work just now

    def record(self, driver_id: int, statement: str) -> None:
        if driver_id not in self.background:
            self.append(statement)

    def sqlalchemy_ran(self, conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        self.record(id(conn.connection.driver_connection), statement)

    def watch(self, entry: Any) -> Any:
        driver = entry.dbapi_connection.driver_connection
        key = id(driver)
        task = asyncio.current_task()
        if task is not None and task.get_coro().__name__ in BACKGROUND:  # type: ignore[union-attr]
            self.background.add(key)
        else:
            self.background.discard(key)
        if key not in self.watched:
            logger = lambda query: self.record(key, query.query)  # noqa: E731
            driver.add_query_logger(logger)
            self.watched[key] = (driver, logger)
        return entry

    async def during(self, work: Any) -> list[str]:
        """The statements `work` (an awaitable) sent."""
        self.clear()
        await work
        for _ in range(3):  # asyncpg reports each statement in a callback of its own
            await asyncio.sleep(0)
        return [" ".join(statement.split())[:60] for statement in self]


@pytest.fixture
def statements(monkeypatch: pytest.MonkeyPatch) -> Iterator[Statements]:
    seen = Statements()
    take = MeasuredPool._do_get
    monkeypatch.setattr(MeasuredPool, "_do_get", lambda pool: seen.watch(take(pool)))
    event.listen(Engine, "before_cursor_execute", seen.sqlalchemy_ran)
    yield seen
    event.remove(Engine, "before_cursor_execute", seen.sqlalchemy_ran)
    for driver, logger in seen.watched.values():
        driver.remove_query_logger(logger)


@pytest.fixture
async def engine(settings: Settings) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(settings)
    yield engine
    await engine.dispose()


async def ready_to_hold(booking: Booking) -> tuple[str, str, str]:
    concert = await booking.create_concert(seat_count=2, price=PRICE)
    user = new_user("trips")
    await booking.charge(user, PRICE)
    token = await booking.active_token(user, concert)
    return user, token, concert["schedules"][0]["id"]


async def test_a_hold_is_begin_three_statements_and_commit(
    booking: Booking, statements: Statements
) -> None:
    user, token, schedule_id = await ready_to_hold(booking)
    await booking.hold(user, token, schedule_id, 2)  # the user's and schedule's lookups cached

    sent = await statements.during(booking.hold(user, token, schedule_id, 1))

    assert len(sent) == 5, sent
    assert (sent.count("BEGIN;"), sent.count("COMMIT;")) == (1, 1)


async def test_a_payment_is_begin_four_statements_and_commit(
    booking: Booking, statements: Statements
) -> None:
    user, token, schedule_id = await ready_to_hold(booking)
    held = (await booking.hold(user, token, schedule_id, 1)).json()

    response: list[Any] = []

    async def pay() -> None:
        response.append(await booking.pay(user, token, held["id"]))

    sent = await statements.during(pay())

    assert response[0].status_code == 201, response[0].text
    # the key's claim, the locks, the payment with its events, the stored answer
    assert len(sent) == 6, sent
    assert (sent.count("BEGIN;"), sent.count("COMMIT;")) == (1, 1)


async def warm(saga: TicketSaga, booking: Booking) -> None:
    """A first payment through the saga: its connection has read the types it uses."""
    await saga.on_payment_completed(uuid.uuid4(), await booking.paid(PRICE, "trips"), None)


# Confirming: the claim, the settlement with its events. Compensating: the claim; then
# BEGIN, the event marked, reservation, wallet and seat locked, the saga closed, the
# payment undone, the refund recorded, its events, COMMIT.
@pytest.mark.parametrize(("venue_accepts", "statements_sent", "transactions"), [
    (True, 2, 0), (False, 11, 1)], ids=["confirmed", "compensated"])
async def test_the_saga_sends_its_usual_statements(
    booking: Booking, engine: AsyncEngine, statements: Statements, venue_accepts: bool,
    statements_sent: int, transactions: int,
) -> None:
    saga = TicketSaga(engine, Venue(accept=venue_accepts))
    await warm(saga, booking)
    payment = await booking.paid(PRICE, "trips")

    sent = await statements.during(saga.on_payment_completed(uuid.uuid4(), payment, None))

    assert len(sent) == statements_sent, sent
    assert (sent.count("BEGIN;"), sent.count("COMMIT;")) == (transactions, transactions)
