"""Who to tell and about what: read from the booking database at send time, by the
statement that opens a notification's log (migration 0006, notification_open).

Phone numbers stay out of Kafka, and the newest contact claim the user presented wins.
"""

from collections.abc import Mapping
from typing import Any

from services.booking.domain.events import NotificationRequested
from services.notifier.domain.messages import Content


def content(row: Mapping[str, Any], request: NotificationRequested) -> Content | None:
    """The message's content from the recipient's columns; None when the user or schedule is gone."""
    if row["concert_title"] is None:
        return None
    return Content(template=request.template, seat_no=request.seat_no, amount=request.amount,
                   name=row["name"], phone=row["phone"], concert_title=row["concert_title"],
                   starts_at=row["starts_at"])
