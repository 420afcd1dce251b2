"""Who to tell and about what: read from the booking database at send time.

Phone numbers stay out of Kafka, and the newest contact claim the user presented wins.
"""

from collections.abc import Mapping
from typing import Any

from services.booking.domain.events import NotificationRequested
from services.notifier.domain.messages import Content


def recipient(user_id: str, schedule_id: str) -> str:
    """The query of a notification's recipient and concert, for the $n placeholders given:
    a part of the delivery log's first statement (delivery_log.OPEN)."""
    return f"""
    SELECT COALESCE(u.name, u.id) AS name, u.phone_number AS phone, c.title AS concert_title,
           s.starts_at
      FROM users u, schedules s JOIN concerts c ON c.id = s.concert_id
     WHERE u.id = {user_id} AND s.id = {schedule_id}"""  # noqa: S608 (placeholders only: no input)


def content(row: Mapping[str, Any], request: NotificationRequested) -> Content | None:
    """The message's content from recipient()'s columns; None when the user or schedule is gone."""
    if row["concert_title"] is None:
        return None
    return Content(template=request.template, seat_no=request.seat_no, amount=request.amount,
                   name=row["name"], phone=row["phone"], concert_title=row["concert_title"],
                   starts_at=row["starts_at"])
