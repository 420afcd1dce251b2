"""The ticket saga's rules: after a payment, register the ticket or undo the payment.

No I/O here: the service layer asks the venue and applies what these functions decide.
"""

from dataclasses import dataclass
from uuid import UUID, uuid5

from services.booking.domain.events import (
    NotificationRequested,
    PaymentCompleted,
    PaymentRefunded,
    Template,
    TicketConfirmed,
)
from services.booking.domain.wallet import balance_after_refund

# Fixed namespace: the same payment and template always name the same notification.
NOTIFICATION_NAMESPACE = UUID("6f1d3c2e-4b7a-4f0e-9a55-0c2b8d9e7f10")

REGISTERING = "REGISTERING"
CONFIRMED = "CONFIRMED"
COMPENSATED = "COMPENSATED"


@dataclass(frozen=True)
class Registered:
    """The venue accepted the ticket."""

    attempts: int


@dataclass(frozen=True)
class Refused:
    """The venue rejected the ticket, or could not be reached in time: undo the payment."""

    reason: str
    attempts: int


VenueVerdict = Registered | Refused


def venue_unavailable(cause: object, attempts: int) -> Refused:
    """No answer in time, or an open breaker that stayed open: the payment is undone."""
    return Refused(f"venue unavailable: {cause}", attempts)


def venue_rejected(status: int, code: str | None, attempts: int) -> Refused:
    """A definite no from the venue: retrying cannot help, so the payment is undone."""
    detail = f" {code}" if code else ""
    return Refused(f"venue rejected the ticket: HTTP {status}{detail}", attempts)


@dataclass(frozen=True)
class LockedPayment:
    """The reservation behind a payment to undo, locked: its owner and seat."""

    user_id: str
    schedule_id: UUID
    seat_no: int


@dataclass(frozen=True)
class Refund:
    """Undoing a payment: the wallet's balance after it and the events it raises."""

    balance_after: int
    events: tuple[PaymentRefunded, NotificationRequested]


def refund(payment: PaymentCompleted, refused: Refused, balance: int, amount: int) -> Refund:
    """Give `amount` back to a wallet holding `balance` (never above its limit)."""
    return Refund(balance_after_refund(balance, amount), refund_events(payment, refused.reason))


def registration_id(ticket_id: UUID) -> str:
    """The venue's idempotency key: one per ticket, so a repeated call registers nothing new."""
    return str(ticket_id)


def notification_id(payment_id: UUID, template: Template) -> UUID:
    return uuid5(NOTIFICATION_NAMESPACE, f"{payment_id}:{template}")


def notification(payment: PaymentCompleted, template: Template) -> NotificationRequested:
    return NotificationRequested(
        notification_id=notification_id(payment.payment_id, template), template=template,
        user_id=payment.user_id, payment_id=payment.payment_id, schedule_id=payment.schedule_id,
        seat_no=payment.seat_no, amount=payment.amount,
    )


def confirmation_events(
    payment: PaymentCompleted,
) -> tuple[TicketConfirmed, NotificationRequested]:
    confirmed = TicketConfirmed(
        ticket_id=payment.ticket_id, payment_id=payment.payment_id, user_id=payment.user_id,
        schedule_id=payment.schedule_id, seat_no=payment.seat_no,
        registration_id=registration_id(payment.ticket_id),
    )
    return confirmed, notification(payment, "TICKET_CONFIRMED")


def refund_events(
    payment: PaymentCompleted, reason: str
) -> tuple[PaymentRefunded, NotificationRequested]:
    refunded = PaymentRefunded(
        payment_id=payment.payment_id, reservation_id=payment.reservation_id,
        ticket_id=payment.ticket_id, user_id=payment.user_id, schedule_id=payment.schedule_id,
        seat_no=payment.seat_no, amount=payment.amount, reason=reason,
    )
    return refunded, notification(payment, "PAYMENT_REFUNDED")
