"""What a service function may ask of one transaction: its repositories and its events.

Whoever opens the unit of work owns the transaction: it commits when their block ends
without an error, with the events collected here written to the outbox in the same
transaction, and rolls everything back otherwise. A service function of one transaction
takes the open unit of work from its caller (an HTTP route, a consumer); one that needs
several, or Redis between them, takes StartUnitOfWork and opens its own. PostgreSQL's
implementation is services/booking/adapters/unit_of_work.py; tests/unit has one in memory.
"""

from collections.abc import Callable, Iterable, Sequence
from contextlib import AbstractAsyncContextManager
from datetime import datetime
from typing import Any, Protocol
from uuid import UUID

from services.booking.domain.events import DomainEvent
from services.booking.domain.payment import PayableHold, Payment
from services.booking.domain.seat_hold import Reservation, SeatTaken
from services.booking.domain.ticket_saga import LockedPayment
from services.booking.domain.waiting_room import Room


class Reservations(Protocol):
    async def take_seat(self, planned: Reservation, now: datetime) -> SeatTaken:
        """Hold the seat for `planned` if it is free."""

    async def live_holds(self, user_id: str, schedule_id: UUID, now: datetime) -> int:
        """Count the user's live holds on a schedule, holding the user's lock until commit."""

    async def lock_own(self, reservation_id: UUID, user_id: str) -> Reservation | None: ...

    async def release(self, reservation: Reservation, status: str) -> None:
        """Close the reservation with `status` and free its seat if it still holds it."""


class Catalogue(Protocol):
    async def add_concert(self, concert_id: UUID, title: str, venue: str,
                          schedules: Sequence[dict[str, Any]]) -> None: ...

    async def concert_exists(self, concert_id: UUID) -> bool: ...


class Rooms(Protocol):
    async def record_change(self, concert_id: UUID, changed_by: str, changes: dict[str, Any]) -> int:
        """Audit one change; its id is the version the change makes."""

    async def add_room(self, room: Room) -> None:
        """Store a new room; a room already there is kept as it is."""

    async def room(self, concert_id: UUID, *, for_update: bool = False) -> Room | None: ...

    async def store_policy(self, room: Room) -> None: ...


class Payments(Protocol):
    async def lock_for_payment(self, reservation_id: UUID, user_id: str) -> PayableHold | None:
        """Lock the user's reservation, then their wallet."""

    async def record(self, payment: Payment, queue_token: str | None, now: datetime) -> bool:
        """Write the whole payment, its spent `queue_token` (for booking-worker token-expiry)
        and the events collected so far; False when the hold no longer owns the seat."""


class Wallets(Protocol):
    async def lock_balance(self, user_id: str) -> int:
        """Lock the wallet row until commit; callers lock their reservation first."""

    async def record_movement(self, user_id: str, kind: str, amount: int, balance_after: int,
                              now: datetime, payment_id: UUID | None = None) -> None: ...


class Refunds(Protocol):
    async def lock_for_refund(self, reservation_id: UUID) -> LockedPayment | None:
        """Lock the reservation; the caller then locks the wallet, then the seat."""

    async def lock_seat(self, schedule_id: UUID, seat_no: int) -> None: ...

    async def undo_payment(self, payment_id: UUID, schedule_id: UUID, seat_no: int,
                           now: datetime) -> int | None:
        """Void the ticket, refund the payment, free the seat; the amount, or None if done before."""


class SagaLog(Protocol):
    async def mark_processed(self, consumer: str, event_id: UUID) -> bool:
        """Record the event as handled; False when it already was."""

    async def finish(self, payment_id: UUID, status: str, reason: str | None, attempts: int,
                     now: datetime) -> bool:
        """Close the saga; False when it was already closed."""


class UnitOfWork(Protocol):
    @property
    def reservations(self) -> Reservations: ...
    @property
    def catalogue(self) -> Catalogue: ...
    @property
    def rooms(self) -> Rooms: ...
    @property
    def payments(self) -> Payments: ...
    @property
    def wallets(self) -> Wallets: ...
    @property
    def refunds(self) -> Refunds: ...
    @property
    def sagas(self) -> SagaLog: ...

    def collect(self, events: Iterable[DomainEvent]) -> None:
        """Events the domain raised, for the outbox at commit."""


StartUnitOfWork = Callable[[], AbstractAsyncContextManager[UnitOfWork]]
