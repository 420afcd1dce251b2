"""Domain events: facts the rest of the system learns through the outbox."""

from dataclasses import dataclass
from uuid import UUID


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
class QueueTokenExpired:
    token: str
    user_id: str
    reason: str


DomainEvent = PaymentCompleted | QueueTokenExpired
