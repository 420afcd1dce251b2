"""Seat holds: how long they last, how many a user may keep, what state they are in."""

from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Literal
from uuid import UUID

from services.booking.domain.errors import (
    AlreadyPaid,
    HoldLimitReached,
    NotFound,
    ReservationExpired,
    ReservationNotHeld,
    SeatUnavailable,
)

ReservationStatus = Literal["HELD", "PAID", "EXPIRED", "CANCELLED"]


@dataclass(frozen=True)
class Reservation:
    id: UUID
    user_id: str
    schedule_id: UUID
    seat_no: int
    price: int
    status: ReservationStatus
    expires_at: datetime

    def status_at(self, now: datetime) -> ReservationStatus:
        """A hold past its expiry is EXPIRED even before the sweeper records it."""
        if self.status == "HELD" and self.expires_at <= now:
            return "EXPIRED"
        return self.status


@dataclass(frozen=True)
class SeatTaken:
    """What asking for a seat found: its price when this hold took it."""

    price: int | None  # None when the seat was not free (or does not exist)
    seat_exists: bool


@dataclass(frozen=True)
class HoldPolicy:
    """How long a hold lasts and how many live holds a user may keep on one schedule."""

    ttl_seconds: int
    max_holds: int

    def plan(self, reservation_id: UUID, user_id: str, schedule_id: UUID, seat_no: int,
             now: datetime) -> Reservation:
        """The hold to take, priced once the seat is ours."""
        return Reservation(reservation_id, user_id, schedule_id, seat_no, 0, "HELD",
                           now + timedelta(seconds=self.ttl_seconds))

    def taken(self, planned: Reservation, seat: SeatTaken) -> Reservation:
        """The hold at the seat's price, if it took the seat."""
        if seat.price is None:
            if not seat.seat_exists:
                raise NotFound(f"no seat {planned.seat_no} in schedule {planned.schedule_id}")
            raise SeatUnavailable(f"seat {planned.seat_no} is not available")
        return replace(planned, price=seat.price)

    def check_limit(self, live_holds: int) -> None:
        """Refuse a hold that makes more than `max_holds` (`live_holds` counts it)."""
        if live_holds > self.max_holds:
            raise HoldLimitReached(f"at most {self.max_holds} live holds per schedule")


def check_payable(reservation: Reservation, now: datetime) -> None:
    status = reservation.status_at(now)
    if status == "PAID":
        raise AlreadyPaid(f"reservation {reservation.id} is already paid")
    if status == "EXPIRED":
        raise ReservationExpired(f"the hold on seat {reservation.seat_no} has expired")
    if status != "HELD":
        raise ReservationNotHeld(f"reservation {reservation.id} is {status}")


def check_cancellable(reservation: Reservation, now: datetime) -> None:
    status = reservation.status_at(now)
    if status != "HELD":
        raise ReservationNotHeld(f"reservation {reservation.id} is {status}")
