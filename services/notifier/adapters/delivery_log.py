"""The notification delivery log in PostgreSQL, written under a per-notification lock.

Every provider call is recorded as SENDING and committed before it is made, then
settled with the answer. So a crash between the provider's answer and our commit
leaves a SENDING row behind, and the next delivery knows a call may have gone out.
"""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from uuid import UUID

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from services.booking.domain.events import NotificationRequested
from services.notifier.adapters import directory
from services.notifier.domain.messages import Channel, Content

# Advisory lock class of notifications (two-key form: other subsystems use other classes).
LOCK_CLASS = 0x4E4F54
LOCK = text("SELECT pg_advisory_lock(:class, :key)")
UNLOCK = text("SELECT pg_advisory_unlock(:class, :key)")
OPEN = text("""
INSERT INTO notifications (id, template, user_id, payment_id, status, created_at, updated_at)
VALUES (:id, :template, :user_id, :payment_id, 'PENDING', :now, :now)
ON CONFLICT (id) DO NOTHING
""")
STATE = text("""
SELECT n.status, a.id AS attempt_id, a.channel
  FROM notifications n
  LEFT JOIN LATERAL (
      SELECT id, channel FROM notification_attempts
       WHERE notification_id = n.id AND status = 'SENDING' ORDER BY id DESC LIMIT 1
  ) a ON true
 WHERE n.id = :id
""")
BEGIN = text("""
INSERT INTO notification_attempts (notification_id, channel, message_id, status, started_at)
VALUES (:id, :channel, :message_id, 'SENDING', :now) RETURNING id
""")
SETTLE = text("""
UPDATE notification_attempts
   SET status = :status, http_attempts = http_attempts + :http_attempts,
       provider_message_id = :provider_id, error = :error,
       finished_at = CASE WHEN :status = 'SENDING' THEN NULL ELSE CAST(:now AS timestamptz) END
 WHERE id = :attempt_id
""")
CLOSE = text("""
UPDATE notifications SET status = :status, channel = :channel, reason = :reason, updated_at = :now
 WHERE id = :id
""")


@dataclass(frozen=True)
class NotificationState:
    status: str
    # A call recorded as SENDING whose answer was never recorded (its worker died).
    unsettled_attempt: int | None
    unsettled_channel: Channel | None


class DeliveryLog:
    """One notification's log, on a connection that holds its lock; each write commits."""

    def __init__(self, conn: AsyncConnection, notification_id: UUID) -> None:
        self.conn = conn
        self.notification_id = notification_id

    @staticmethod
    def _now() -> datetime:
        return datetime.now(UTC)

    async def open(self, request: NotificationRequested) -> NotificationState:
        async with self.conn.begin():
            await self.conn.execute(OPEN, {
                "id": self.notification_id, "template": request.template,
                "user_id": request.user_id, "payment_id": request.payment_id, "now": self._now(),
            })
            row = (await self.conn.execute(STATE, {"id": self.notification_id})).one()
        return NotificationState(row.status, row.attempt_id, row.channel)

    async def content(self, request: NotificationRequested) -> Content | None:
        async with self.conn.begin():
            return await directory.content(self.conn, request)

    async def begin(self, channel: Channel, message_id: str) -> int:
        async with self.conn.begin():
            params = {"id": self.notification_id, "channel": channel, "message_id": message_id,
                      "now": self._now()}
            return int((await self.conn.execute(BEGIN, params)).scalar_one())

    async def settle(
        self, attempt_id: int, status: str, http_attempts: int, *,
        provider_id: str | None = None, error: str | None = None,
    ) -> None:
        async with self.conn.begin():
            await self._settle(attempt_id, status, http_attempts, provider_id, error)

    async def delivered(
        self, attempt_id: int, channel: Channel, http_attempts: int, provider_id: str | None
    ) -> None:
        async with self.conn.begin():
            await self._settle(attempt_id, "ACCEPTED", http_attempts, provider_id, None)
            await self._close("DELIVERED", channel, None)

    async def close(self, status: str, reason: str | None) -> None:
        async with self.conn.begin():
            await self._close(status, None, reason)

    async def _settle(
        self, attempt_id: int, status: str, http_attempts: int, provider_id: str | None,
        error: str | None,
    ) -> None:
        await self.conn.execute(SETTLE, {
            "attempt_id": attempt_id, "status": status, "http_attempts": http_attempts,
            "provider_id": provider_id, "error": error and error[:1000], "now": self._now(),
        })

    async def _close(self, status: str, channel: Channel | None, reason: str | None) -> None:
        await self.conn.execute(CLOSE, {
            "id": self.notification_id, "status": status, "channel": channel,
            "reason": reason and reason[:1000], "now": self._now(),
        })


@asynccontextmanager
async def exclusive(engine: AsyncEngine, notification_id: UUID) -> AsyncIterator[DeliveryLog]:
    """Hold the notification's lock for the whole delivery, across its transactions.

    A session-level advisory lock: two deliveries of one notification (say, on both
    sides of a consumer rebalance) run one after the other, and a dead worker's lock
    goes with its connection.
    """
    key = {"class": LOCK_CLASS, "key": int.from_bytes(notification_id.bytes[:4], "big", signed=True)}
    async with engine.connect() as conn:
        await conn.execute(LOCK, key)
        await conn.commit()
        try:
            yield DeliveryLog(conn, notification_id)
        finally:
            try:
                await conn.rollback()
                await conn.execute(UNLOCK, key)
                await conn.commit()
            except Exception:
                # A connection that cannot unlock is closed: the lock goes with it.
                with suppress(Exception):
                    await conn.invalidate()
