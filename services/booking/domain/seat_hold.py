"""Seat holds: how long they last, how many a user may keep, what state they are in."""

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal
from uuid import UUID

from services.booking.domain.errors import (
    AlreadyPaid,
    HoldLimitReached,
    ReservationExpired,
    ReservationNotHeld,
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


def hold_expiry(now: datetime, ttl_seconds: int) -> datetime:
    return now + timedelta(seconds=ttl_seconds)


def check_hold_limit(live_holds: int, max_holds: int) -> None:
    if live_holds >= max_holds:
        raise HoldLimitReached(f"at most {max_holds} live holds per schedule")


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
