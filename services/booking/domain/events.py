"""Domain events: facts the rest of the system learns through the outbox."""

from dataclasses import dataclass
from typing import Literal
from uuid import UUID

Template = Literal["TICKET_CONFIRMED", "PAYMENT_REFUNDED"]


@dataclass(frozen=True)
class PaymentCompleted:
    payment_id: UUID
    reservation_id: UUID
    ticket_id: UUID
    user_id: str
    schedule_id: UUID
    seat_no: int
    amount: int
    queue_token: str | None


@dataclass(frozen=True)
class TicketConfirmed:
    ticket_id: UUID
    payment_id: UUID
    user_id: str
    schedule_id: UUID
    seat_no: int
    registration_id: str


@dataclass(frozen=True)
class PaymentRefunded:
    payment_id: UUID
    reservation_id: UUID
    ticket_id: UUID
    user_id: str
    schedule_id: UUID
    seat_no: int
    amount: int
    reason: str


@dataclass(frozen=True)
class NotificationRequested:
    """Ask the notifier to tell the user; `notification_id` is the same for every repeat."""

    notification_id: UUID
    template: Template
    user_id: str
    payment_id: UUID
    schedule_id: UUID
    seat_no: int
    amount: int


DomainEvent = PaymentCompleted | TicketConfirmed | PaymentRefunded | NotificationRequested
