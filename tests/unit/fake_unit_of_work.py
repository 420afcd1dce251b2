"""An in-memory booking database behind the service layer's UnitOfWork port.

Like PostgreSQL's unit of work (services/booking/adapters/unit_of_work.py), a block
commits when it ends without an error, with the events collected, and leaves nothing
behind otherwise. It keeps only the state the rules look at; the SQL itself is proven
by the integration tests.
"""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any
from uuid import UUID, uuid4

from services.booking.domain.events import DomainEvent
from services.booking.domain.payment import PayableHold, Payment
from services.booking.domain.seat_hold import HoldPolicy, Reservation, SeatTaken
from services.booking.domain.ticket_saga import LockedPayment
from services.booking.domain.waiting_room import Room
from services.booking.service_layer.reservations import hold_seat


@dataclass
class Seat:
    price: int
    status: str = "AVAILABLE"
    reservation_id: UUID | None = None
    held_until: datetime | None = None


@dataclass
class Tables:
    seats: dict[tuple[UUID, int], Seat] = field(default_factory=dict)
    concert_of_schedule: dict[UUID, UUID] = field(default_factory=dict)
    reservations: dict[UUID, Reservation] = field(default_factory=dict)
    wallets: dict[str, int] = field(default_factory=dict)
    history: list[tuple[str, str, int, int]] = field(default_factory=list)  # user, kind, amount, after
    payments: dict[UUID, dict[str, Any]] = field(default_factory=dict)
    sagas: dict[UUID, str] = field(default_factory=dict)
    processed: set[tuple[str, UUID]] = field(default_factory=set)
    outbox: list[DomainEvent] = field(default_factory=list)
    spent_tokens: list[str] = field(default_factory=list)
    concerts: set[UUID] = field(default_factory=set)
    rooms: dict[UUID, Room] = field(default_factory=dict)
    room_changes: list[tuple[UUID, str, dict[str, Any]]] = field(default_factory=list)


class Database:
    def __init__(self) -> None:
        self.tables = Tables()
        self.statements = 0  # repository calls, each a statement of the real unit of work, kept on rollback

    def add_schedule(self, seats: int, price: int) -> UUID:
        schedule_id, concert_id = uuid4(), uuid4()
        self.tables.concert_of_schedule[schedule_id] = concert_id
        for seat_no in range(1, seats + 1):
            self.tables.seats[(schedule_id, seat_no)] = Seat(price)
        return schedule_id

    @asynccontextmanager
    async def unit_of_work(self) -> AsyncIterator[FakeUnitOfWork]:
        working = copy.deepcopy(self.tables)
        uow = FakeUnitOfWork(working, self)
        yield uow  # an exception here leaves self.tables as it was: a rollback
        working.outbox.extend(uow.events)
        self.tables = working


class FakeUnitOfWork:
    def __init__(self, tables: Tables, db: Database) -> None:
        self.events: list[DomainEvent] = []
        self.reservations = FakeReservations(tables, db)
        self.payments = FakePayments(tables, db)
        self.wallets = FakeWallets(tables, db)
        self.refunds = FakeRefunds(tables, db)
        self.sagas = FakeSagaLog(tables, db)
        self.catalogue = FakeCatalogue(tables, db)
        self.rooms = FakeRooms(tables, db)

    def collect(self, events: Iterable[DomainEvent]) -> None:
        self.events.extend(events)


class Repository:
    def __init__(self, tables: Tables, db: Database) -> None:
        self.tables = tables
        self.db = db

    def statement(self) -> Tables:
        self.db.statements += 1
        return self.tables


class FakeReservations(Repository):
    async def take_seat(self, planned: Reservation, now: datetime) -> SeatTaken:
        tables = self.statement()
        seat = tables.seats.get((planned.schedule_id, planned.seat_no))
        if seat is None:
            return SeatTaken(None, False)
        expired_hold = seat.status == "HELD" and seat.held_until is not None and seat.held_until <= now
        if seat.status != "AVAILABLE" and not expired_hold:
            return SeatTaken(None, True)
        seat.status, seat.reservation_id, seat.held_until = "HELD", planned.id, planned.expires_at
        tables.reservations[planned.id] = replace(planned, price=seat.price)
        return SeatTaken(seat.price, True)

    async def live_holds(self, user_id: str, schedule_id: UUID, now: datetime) -> int:
        return sum(1 for r in self.statement().reservations.values()
                   if (r.user_id, r.schedule_id, r.status) == (user_id, schedule_id, "HELD")
                   and r.expires_at > now)

    async def lock_own(self, reservation_id: UUID, user_id: str) -> Reservation | None:
        found = self.statement().reservations.get(reservation_id)
        return found if found is not None and found.user_id == user_id else None

    async def release(self, reservation: Reservation, status: str) -> None:
        tables = self.statement()
        tables.reservations[reservation.id] = replace(reservation, status=status)  # type: ignore[arg-type]
        seat = tables.seats[(reservation.schedule_id, reservation.seat_no)]
        if seat.reservation_id == reservation.id and seat.status == "HELD":
            seat.status, seat.reservation_id, seat.held_until = "AVAILABLE", None, None


class FakePayments(Repository):
    async def lock_for_payment(self, reservation_id: UUID, user_id: str) -> PayableHold | None:
        tables = self.statement()
        found = tables.reservations.get(reservation_id)
        if found is None or found.user_id != user_id:
            return None
        return PayableHold(found, tables.wallets.get(user_id, 0),
                           tables.concert_of_schedule[found.schedule_id])

    async def record(self, payment: Payment, queue_token: str | None, now: datetime) -> bool:
        tables = self.statement()
        reservation = payment.reservation
        seat = tables.seats[(reservation.schedule_id, reservation.seat_no)]
        if seat.reservation_id != reservation.id or seat.status != "HELD":
            return False
        seat.status, seat.held_until = "SOLD", None
        tables.reservations[reservation.id] = replace(reservation, status="PAID")
        tables.wallets[reservation.user_id] = payment.balance_after
        tables.history.append((reservation.user_id, "USE", reservation.price, payment.balance_after))
        tables.payments[payment.id] = {"status": "PAID", "amount": reservation.price,
                                       "reservation_id": reservation.id}
        tables.sagas[payment.id] = "REGISTERING"
        if queue_token is not None:
            tables.spent_tokens.append(queue_token)
        return True


class FakeWallets(Repository):
    async def lock_balance(self, user_id: str) -> int:
        return self.statement().wallets.get(user_id, 0)

    async def record_movement(self, user_id: str, kind: str, amount: int, balance_after: int,
                              now: datetime, payment_id: UUID | None = None) -> None:
        tables = self.statement()
        tables.wallets[user_id] = balance_after
        tables.history.append((user_id, kind, amount, balance_after))


class FakeRefunds(Repository):
    async def lock_for_refund(self, reservation_id: UUID) -> LockedPayment | None:
        found = self.statement().reservations.get(reservation_id)
        return None if found is None else LockedPayment(found.user_id, found.schedule_id, found.seat_no)

    async def lock_seat(self, schedule_id: UUID, seat_no: int) -> None:
        self.statement()

    async def undo_payment(self, payment_id: UUID, schedule_id: UUID, seat_no: int,
                           now: datetime) -> int | None:
        tables = self.statement()
        payment = tables.payments.get(payment_id)
        if payment is None or payment["status"] != "PAID":
            return None
        payment["status"] = "REFUNDED"
        reservation = tables.reservations[payment["reservation_id"]]
        tables.reservations[reservation.id] = replace(reservation, status="CANCELLED")
        seat = tables.seats[(schedule_id, seat_no)]
        if seat.reservation_id == reservation.id and seat.status == "SOLD":
            seat.status, seat.reservation_id = "AVAILABLE", None
        return int(payment["amount"])


class FakeSagaLog(Repository):
    async def mark_processed(self, consumer: str, event_id: UUID) -> bool:
        tables = self.statement()
        if (consumer, event_id) in tables.processed:
            return False
        tables.processed.add((consumer, event_id))
        return True

    async def finish(self, payment_id: UUID, status: str, reason: str | None, attempts: int,
                     now: datetime) -> bool:
        tables = self.statement()
        if tables.sagas.get(payment_id) != "REGISTERING":
            return False
        tables.sagas[payment_id] = status
        return True


class FakeCatalogue(Repository):
    async def add_concert(self, concert_id: UUID, title: str, venue: str,
                          schedules: list[dict[str, Any]]) -> None:
        self.statement().concerts.add(concert_id)

    async def concert_exists(self, concert_id: UUID) -> bool:
        return concert_id in self.statement().concerts


class FakeRooms(Repository):
    async def record_change(self, concert_id: UUID, changed_by: str, changes: dict[str, Any]) -> int:
        tables = self.statement()
        tables.room_changes.append((concert_id, changed_by, changes))
        return len(tables.room_changes)

    async def add_room(self, room: Room) -> None:
        self.statement().rooms.setdefault(room.concert_id, room)

    async def room(self, concert_id: UUID, *, for_update: bool = False) -> Room | None:
        return self.statement().rooms.get(concert_id)

    async def store_policy(self, room: Room) -> None:
        self.statement().rooms[room.concert_id] = room


NOW = datetime(2027, 1, 1, 10, tzinfo=UTC)
PRICE = 10_000


async def one_seat_held(balance: int = PRICE) -> tuple[Database, Reservation]:
    """A schedule of one seat at PRICE, held at NOW by "ann", whose wallet holds `balance`."""
    db = Database()
    schedule = db.add_schedule(seats=1, price=PRICE)
    db.tables.wallets["ann"] = balance
    async with db.unit_of_work() as uow:
        held = await hold_seat(uow, HoldPolicy(300, 4), "ann", schedule, 1, NOW)
    return db, held
