"""Who to tell and about what: read from the booking database at send time.

Phone numbers stay out of Kafka, and the newest contact claim the user presented wins.
"""

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from services.booking.domain.events import NotificationRequested
from services.notifier.domain.messages import Content

CONTENT = text("""
SELECT COALESCE(u.name, u.id) AS name, u.phone_number AS phone, c.title AS concert_title,
       s.starts_at
  FROM users u, schedules s JOIN concerts c ON c.id = s.concert_id
 WHERE u.id = :user_id AND s.id = :schedule_id
""")


async def content(conn: AsyncConnection, request: NotificationRequested) -> Content | None:
    params = {"user_id": request.user_id, "schedule_id": request.schedule_id}
    row = (await conn.execute(CONTENT, params)).first()
    if row is None:
        return None
    return Content(template=request.template, seat_no=request.seat_no, amount=request.amount,
                   **row._mapping)
