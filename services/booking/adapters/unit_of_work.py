"""The unit of work on PostgreSQL: one pooled asyncpg connection, one transaction.

Its repositories run the tuned statements on that connection. The events the domain
raised are written just before COMMIT, as outbox rows in one statement, unless a
repository already carried them in its own (a payment's does): a transaction's events
never cost it more than that one statement, and usually nothing.
"""

from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
from sqlalchemy.ext.asyncio import AsyncEngine

from services.booking.adapters import outbox
from services.booking.adapters.catalogue import PostgresCatalogue
from services.booking.adapters.database import driver_connection
from services.booking.adapters.payments import PostgresPayments
from services.booking.adapters.refunds import PostgresRefunds
from services.booking.adapters.reservations import PostgresReservations
from services.booking.adapters.room_rows import PostgresRooms
from services.booking.adapters.sagas import PostgresSagaLog
from services.booking.adapters.wallets import PostgresWallets
from services.booking.domain.events import DomainEvent


class PostgresUnitOfWork:
    """A transaction's connection, its repositories (each made on first use: a hold needs
    one of them) and the events its domain objects raised."""

    __slots__ = (
        "_events",
        "catalogue",
        "connection",
        "payments",
        "refunds",
        "reservations",
        "rooms",
        "sagas",
        "trace_id",
        "wallets",
    )
    reservations: PostgresReservations
    catalogue: PostgresCatalogue
    rooms: PostgresRooms
    payments: PostgresPayments
    wallets: PostgresWallets
    refunds: PostgresRefunds
    sagas: PostgresSagaLog

    def __init__(self, connection: asyncpg.Connection, trace_id: str | None) -> None:
        self.connection = connection  # for the API's idempotency keys, which share the transaction
        self.trace_id = trace_id
        self._events: list[DomainEvent] = []

    def __getattr__(self, name: str) -> Any:
        """A repository's first use in this unit of work (an unset slot lands here)."""
        make = _REPOSITORIES.get(name)
        if make is None:
            raise AttributeError(name)
        repository = make(self)
        setattr(self, name, repository)
        return repository

    def collect(self, events: Iterable[DomainEvent]) -> None:
        self._events.extend(events)

    def take_rows(self) -> list[dict[str, Any]]:
        """The events collected so far as outbox rows, for the statement that writes them."""
        rows = outbox.outbox_rows(self._events, self.trace_id)
        self._events.clear()
        return rows


_REPOSITORIES: dict[str, Callable[[PostgresUnitOfWork], object]] = {
    "reservations": lambda uow: PostgresReservations(uow.connection),
    "catalogue": lambda uow: PostgresCatalogue(uow.connection),
    "rooms": lambda uow: PostgresRooms(uow.connection),
    "payments": lambda uow: PostgresPayments(uow.connection, uow.take_rows),
    "wallets": lambda uow: PostgresWallets(uow.connection),
    "refunds": lambda uow: PostgresRefunds(uow.connection),
    "sagas": lambda uow: PostgresSagaLog(uow.connection),
}


@asynccontextmanager
async def unit_of_work(engine: AsyncEngine, trace_id: str | None) -> AsyncIterator[PostgresUnitOfWork]:
    """A transaction committed, with its events, when the block ends without an error."""
    async with driver_connection(engine) as connection, connection.transaction():
        work = PostgresUnitOfWork(connection, trace_id)
        yield work
        await outbox.add_rows(connection, work.take_rows())
