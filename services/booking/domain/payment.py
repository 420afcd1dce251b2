"""Paying for a hold: whether it may be paid, what it costs the wallet, what it announces."""

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID, uuid4

from services.booking.domain.errors import QueueTokenInvalid
from services.booking.domain.events import DomainEvent, PaymentCompleted
from services.booking.domain.seat_hold import Reservation, check_payable
from services.booking.domain.wallet import balance_after_payment


@dataclass(frozen=True)
class PayableHold:
    """A locked reservation, its owner's balance and the concert it is for."""

    reservation: Reservation
    balance: int
    concert_id: UUID


@dataclass(frozen=True)
class Payment:
    id: UUID
    ticket_id: UUID
    reservation: Reservation
    balance_after: int
    events: tuple[DomainEvent, ...]


def take_payment(
    hold: PayableHold, queue_token: str | None, now: datetime, token_concert: UUID | None = None
) -> Payment:
    """Pay for `hold` from its owner's wallet; `token_concert`, when given, is the concert the
    caller's queue token admits to, and a hold for another concert is refused."""
    if token_concert is not None and hold.concert_id != token_concert:
        raise QueueTokenInvalid("the queue token was issued for another concert")
    reservation = hold.reservation
    check_payable(reservation, now)
    after = balance_after_payment(hold.balance, reservation.price)
    payment_id, ticket_id = uuid4(), uuid4()
    completed = PaymentCompleted(
        payment_id=payment_id, reservation_id=reservation.id, ticket_id=ticket_id,
        user_id=reservation.user_id, schedule_id=reservation.schedule_id, seat_no=reservation.seat_no,
        amount=reservation.price, queue_token=queue_token,
    )
    return Payment(payment_id, ticket_id, reservation, after, (completed,))
