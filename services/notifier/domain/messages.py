"""What a notification says and which channels may carry it, in order. No I/O."""

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from services.booking.domain.events import Template

Channel = Literal["kakao", "sms"]
# Preference order: AlimTalk first, SMS when AlimTalk cannot deliver.
CHANNELS: tuple[Channel, ...] = ("kakao", "sms")

DELIVERED = "DELIVERED"
SKIPPED = "SKIPPED"
FINAL = frozenset({DELIVERED, SKIPPED})


@dataclass(frozen=True)
class Content:
    template: Template
    name: str
    phone: str | None
    concert_title: str
    starts_at: datetime
    seat_no: int
    amount: int


def message_id(notification_id: object) -> str:
    """The provider's idempotency key: one per notification, the same on every channel and try."""
    return str(notification_id)


def channel_order(unsettled: Channel | None) -> tuple[Channel, ...]:
    """Channels to try; a channel whose earlier call has no recorded answer comes first.

    That call may have been accepted. Asking the same provider again with the same
    message id settles it (a provider answers a known id without sending again);
    only then may another channel be tried.
    """
    if unsettled is None:
        return CHANNELS
    return (unsettled, *(channel for channel in CHANNELS if channel != unsettled))


def sms_text(content: Content) -> str:
    when = content.starts_at.strftime("%Y-%m-%d %H:%M")
    if content.template == "TICKET_CONFIRMED":
        return (f"[Booking] {content.name}, your ticket is confirmed: {content.concert_title}, "
                f"{when}, seat {content.seat_no}. Paid {content.amount:,} KRW.")
    return (f"[Booking] {content.name}, your booking for {content.concert_title}, {when}, "
            f"seat {content.seat_no} could not be completed. {content.amount:,} KRW refunded.")
