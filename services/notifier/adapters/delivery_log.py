"""The notification delivery log in PostgreSQL, written under a per-notification lock.

Every provider call is recorded as SENDING and committed before it is made, then
settled with the answer. So a crash between the provider's answer and our commit
leaves a SENDING row behind, and the next delivery knows a call may have gone out.
"""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from uuid import UUID

import asyncpg
from sqlalchemy.ext.asyncio import AsyncEngine

from services.booking.adapters.database import driver_connection
from services.booking.domain.events import NotificationRequested
from services.notifier.adapters import directory
from services.notifier.domain.messages import Channel, Content

# Advisory lock class of notifications (two-key form: other subsystems use other classes).
LOCK_CLASS = 0x4E4F54
LOCK = "SELECT pg_advisory_lock($1, $2)"
UNLOCK = "SELECT pg_advisory_unlock($1, $2)"
# Opens the log (a repeat finds it open) and reads its state and the message's content,
# in one statement. A log opened by this statement is PENDING with no attempt (the
# statement's own insert is invisible to its reads); one opened before is read as is.
# A log this statement opens for a recipient with a phone also records the first
# channel's call as SENDING ($7, $8: channel and message id), which is what its delivery
# does first: `begun` is that attempt, and the call can go out without another round trip.
OPEN = f"""
WITH opened AS (
    INSERT INTO notifications (id, template, user_id, payment_id, status, created_at, updated_at)
    VALUES ($1, $2, $3, $4, 'PENDING', $5, $5)
    ON CONFLICT (id) DO NOTHING
    RETURNING status
), logged AS (
    SELECT n.status, a.id AS attempt_id, a.channel
      FROM notifications n
      LEFT JOIN LATERAL (
          SELECT id, channel FROM notification_attempts
           WHERE notification_id = n.id AND status = 'SENDING' ORDER BY id DESC LIMIT 1
      ) a ON true
     WHERE n.id = $1
), recipient AS ({directory.recipient("$3", "$6")}
), begun AS (
    INSERT INTO notification_attempts (notification_id, channel, message_id, status, started_at)
    SELECT $1, $7, $8, 'SENDING', $5 FROM opened, recipient WHERE recipient.phone IS NOT NULL
    RETURNING id
)
SELECT COALESCE((SELECT status FROM opened), logged.status) AS status, logged.attempt_id,
       logged.channel, (SELECT id FROM begun) AS begun, recipient.*
  FROM (SELECT 1) AS one LEFT JOIN logged ON true LEFT JOIN recipient ON true
"""  # noqa: S608 (constants only: no input)
BEGIN = """
INSERT INTO notification_attempts (notification_id, channel, message_id, status, started_at)
VALUES ($1, $2, $3, 'SENDING', $4) RETURNING id
"""
SETTLE = """
UPDATE notification_attempts
   SET status = $2, http_attempts = http_attempts + $3, provider_message_id = $4, error = $5,
       finished_at = CASE WHEN $2 = 'SENDING' THEN NULL ELSE CAST($6 AS timestamptz) END
 WHERE id = $1
"""
CLOSE = """
UPDATE notifications SET status = $2, channel = $3, reason = $4, updated_at = $5 WHERE id = $1
"""
# The accepted call and the notification's end, in one statement.
DELIVERED = """
WITH settled AS (
    UPDATE notification_attempts
       SET status = 'ACCEPTED', http_attempts = http_attempts + $3, provider_message_id = $4,
           error = NULL, finished_at = $5
     WHERE id = $2
)
UPDATE notifications SET status = 'DELIVERED', channel = $6, reason = NULL, updated_at = $5
 WHERE id = $1
"""


@dataclass(frozen=True)
class NotificationState:
    status: str
    # A call recorded as SENDING whose answer was never recorded (its worker died).
    unsettled_attempt: int | None
    unsettled_channel: Channel | None
    # The first channel's call, recorded as SENDING by the open that created the log.
    begun_attempt: int | None = None


class DeliveryLog:
    """One notification's log, on a connection that holds its lock; each write is one
    statement, committed on its own (asyncpg outside a transaction)."""

    def __init__(self, conn: asyncpg.Connection, notification_id: UUID) -> None:
        self.conn = conn
        self.notification_id = notification_id

    @staticmethod
    def _now() -> datetime:
        return datetime.now(UTC)

    async def open(
        self, request: NotificationRequested, first_channel: Channel, message_id: str
    ) -> tuple[NotificationState, Content | None]:
        """The log's state, and the message's content (None: its user or schedule is gone);
        a new log for a recipient with a phone also begins `first_channel`'s call."""
        row = await self.conn.fetchrow(
            OPEN, self.notification_id, request.template, request.user_id, request.payment_id,
            self._now(), request.schedule_id, first_channel, message_id,
        )
        assert row is not None  # the outer SELECT always has its one row
        state = NotificationState(row["status"], row["attempt_id"], row["channel"], row["begun"])
        return state, directory.content(row, request)

    async def begin(self, channel: Channel, message_id: str) -> int:
        return int(await self.conn.fetchval(BEGIN, self.notification_id, channel, message_id, self._now()))

    async def settle(
        self, attempt_id: int, status: str, http_attempts: int, *,
        provider_id: str | None = None, error: str | None = None,
    ) -> None:
        await self.conn.execute(SETTLE, attempt_id, status, http_attempts, provider_id,
                                error and error[:1000], self._now())

    async def delivered(
        self, attempt_id: int, channel: Channel, http_attempts: int, provider_id: str | None
    ) -> None:
        await self.conn.execute(DELIVERED, self.notification_id, attempt_id, http_attempts,
                                provider_id, self._now(), channel)

    async def close(self, status: str, reason: str | None) -> None:
        await self.conn.execute(CLOSE, self.notification_id, status, None, reason and reason[:1000],
                                self._now())


@asynccontextmanager
async def exclusive(engine: AsyncEngine, notification_id: UUID) -> AsyncIterator[DeliveryLog]:
    """Hold the notification's lock for the whole delivery, across its statements.

    A session-level advisory lock: two deliveries of one notification (say, on both
    sides of a consumer rebalance) run one after the other, and a dead worker's lock
    goes with its connection.
    """
    key = (LOCK_CLASS, int.from_bytes(notification_id.bytes[:4], "big", signed=True))
    # driver_connection drops a connection that died under us (a PostgreSQL restart) from
    # the pool, so the retry after an outage gets a live one.
    async with driver_connection(engine) as conn:
        await conn.execute(LOCK, *key)
        try:
            yield DeliveryLog(conn, notification_id)
        finally:
            try:
                await conn.execute(UNLOCK, *key)
            except BaseException:
                # A connection that cannot unlock (or is cancelled meanwhile) is closed, so
                # driver_connection drops it from the pool: the lock goes with it.
                conn.terminate()
                raise
