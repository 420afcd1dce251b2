"""The notification delivery log in PostgreSQL, written under a per-notification lock.

Every provider call is recorded as SENDING and committed before it is made, then
settled with the answer. So a crash between the provider's answer and our commit
leaves a SENDING row behind, and the next delivery knows a call may have gone out.

One connection per worker carries the logs of every notification in hand
(`DeliveryLogs`). It holds each one's advisory lock for the whole delivery, and the
notifications handled at once share its statements (services/common/coalescing.py):
one statement takes the locks of the notifications that start together, one opens
their logs, and one records their accepted calls, commits and lets their locks go.
Each statement commits on its own (asyncpg outside a transaction), one at a time.

The lock is PostgreSQL's, so it goes with the connection (lock_connection.py): when
that connection is lost, the deliveries that held a lock on it fail (`LockLost`, an
outage, retried) and start again on a new one. Two deliveries of one notification in
this worker take turns here; across workers (a rebalance) the later one finds the lock
taken and tries again until LOCK_WAIT_SECONDS have passed.
"""

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from sqlalchemy.ext.asyncio import AsyncEngine

from services.booking.domain.events import NotificationRequested
from services.common.coalescing import Coalescer
from services.notifier.adapters import directory
from services.notifier.adapters.lock_connection import LockConnection
from services.notifier.domain.messages import Channel, Content

# Advisory lock class of notifications (two-key form: other subsystems use other classes).
LOCK_CLASS = 0x4E4F54
# How long a delivery waits for a lock another worker holds, and how often it looks.
LOCK_WAIT_SECONDS = 120.0
LOCK_RETRY_SECONDS = (0.01, 0.5)
# Takes what it can of the locks asked for (a lock another session holds is not waited
# for: that would stall every delivery on this connection). One row per key, in order.
TRY_LOCKS = """
SELECT pg_try_advisory_lock($1, k) AS locked
  FROM unnest(CAST($2 AS int[])) WITH ORDINALITY AS t(k, n) ORDER BY n
"""
UNLOCKS = "SELECT pg_advisory_unlock($1, k) FROM unnest(CAST($2 AS int[])) AS t(k)"
# Opens the logs (a repeat finds its log open) and reads each one's state and message
# content, in one statement. A log opened by this statement is PENDING with no attempt
# (the statement's own insert is invisible to its reads); one opened before is read as
# is. A log this statement opens for a recipient with a phone also records the call of
# the row's first channel as SENDING, with its message id, which is what its delivery
# does first: `begun` is that attempt, and the call goes out without another round
# trip. One row per input row, in input order; no notification twice in one call.
OPEN = f"""
WITH input AS (
    SELECT * FROM unnest(CAST($1 AS uuid[]), CAST($2 AS text[]), CAST($3 AS text[]),
                         CAST($4 AS uuid[]), CAST($6 AS uuid[]), CAST($7 AS text[]),
                         CAST($8 AS text[]))
           WITH ORDINALITY AS i(id, template, user_id, payment_id, schedule_id, first_channel,
                                message_id, n)
), opened AS (
    INSERT INTO notifications (id, template, user_id, payment_id, status, created_at, updated_at)
    SELECT id, template, user_id, payment_id, 'PENDING', $5, $5 FROM input ORDER BY id
    ON CONFLICT (id) DO NOTHING
    RETURNING id, status
), logged AS (
    SELECT n.id, n.status, a.id AS attempt_id, a.channel
      FROM input i
      JOIN notifications n ON n.id = i.id
      LEFT JOIN LATERAL (
          SELECT id, channel FROM notification_attempts
           WHERE notification_id = n.id AND status = 'SENDING' ORDER BY id DESC LIMIT 1
      ) a ON true
), recipient AS (
    SELECT i.id, r.* FROM input i JOIN LATERAL ({directory.recipient("i.user_id", "i.schedule_id")}
    ) r ON true
), begun AS (
    INSERT INTO notification_attempts (notification_id, channel, message_id, status, started_at)
    SELECT i.id, i.first_channel, i.message_id, 'SENDING', $5
      FROM input i JOIN opened USING (id) JOIN recipient r USING (id)
     WHERE r.phone IS NOT NULL
    RETURNING id, notification_id
)
SELECT COALESCE(o.status, l.status) AS status, l.attempt_id, l.channel, b.id AS begun,
       r.name, r.phone, r.concert_title, r.starts_at
  FROM input i
  LEFT JOIN opened o ON o.id = i.id
  LEFT JOIN logged l ON l.id = i.id
  LEFT JOIN recipient r ON r.id = i.id
  LEFT JOIN begun b ON b.notification_id = i.id
 ORDER BY i.n
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
# Each accepted call and its notification's end, for all of them, committed before
# their locks go: one CALL (migration 0006, notification_delivered).
DELIVERED = "CALL notification_delivered($1, $2, $3, $4, $5, $6, $7, $8)"


class NotificationBusy(Exception):
    """Another worker kept the notification's lock for LOCK_WAIT_SECONDS."""


@dataclass(frozen=True)
class NotificationState:
    status: str
    # A call recorded as SENDING whose answer was never recorded (its worker died).
    unsettled_attempt: int | None
    unsettled_channel: Channel | None
    # The first channel's call, recorded as SENDING by the open that created the log.
    begun_attempt: int | None = None


@dataclass(frozen=True)
class _Opening:
    log: "DeliveryLog"
    request: NotificationRequested
    first_channel: Channel
    message_id: str


@dataclass(frozen=True)
class _Accepted:
    log: "DeliveryLog"
    attempt_id: int
    channel: Channel
    http_attempts: int
    provider_id: str | None


def _now() -> datetime:
    return datetime.now(UTC)


def lock_key(notification_id: UUID) -> int:
    return int.from_bytes(notification_id.bytes[:4], "big", signed=True)


class DeliveryLog:
    """One notification's log, written while its lock is held (`DeliveryLogs.exclusive`)."""

    def __init__(self, logs: "DeliveryLogs", notification_id: UUID, generation: int) -> None:
        self.logs = logs
        self.notification_id = notification_id
        # Which of the shared connection's lives holds this notification's lock.
        self.generation = generation
        self.released = False  # its lock was let go with the accepted call's record

    async def open(
        self, request: NotificationRequested, first_channel: Channel, message_id: str
    ) -> tuple[NotificationState, Content | None]:
        """The log's state, and the message's content (None: its user or schedule is gone);
        a new log for a recipient with a phone also begins `first_channel`'s call."""
        row = await self.logs.opening(_Opening(self, request, first_channel, message_id))
        state = NotificationState(row["status"], row["attempt_id"], row["channel"], row["begun"])
        return state, directory.content(row, request)

    async def begin(self, channel: Channel, message_id: str) -> int:
        return int(await self.logs.run(self.generation, "fetchval", BEGIN, self.notification_id,
                                       channel, message_id, _now()))

    async def settle(
        self, attempt_id: int, status: str, http_attempts: int, *,
        provider_id: str | None = None, error: str | None = None,
    ) -> None:
        await self.logs.run(self.generation, "execute", SETTLE, attempt_id, status, http_attempts,
                            provider_id, error and error[:1000], _now())

    async def delivered(
        self, attempt_id: int, channel: Channel, http_attempts: int, provider_id: str | None
    ) -> None:
        await self.logs.delivering(_Accepted(self, attempt_id, channel, http_attempts, provider_id))

    async def close(self, status: str, reason: str | None) -> None:
        await self.logs.run(self.generation, "execute", CLOSE, self.notification_id, status, None,
                            reason and reason[:1000], _now())


class DeliveryLogs:
    """The delivery logs of one worker, on one connection that holds their locks."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._connection = LockConnection(engine)
        self._in_hand: dict[UUID, asyncio.Event] = {}  # locked here; set when let go
        # Each call names one notification; two calls for one never share a statement.
        self._locking = Coalescer(self._lock_many, key=lambda notification_id: notification_id)
        self.opening = Coalescer(self._open_many, key=lambda each: each.log.notification_id)
        self.delivering = Coalescer(self._delivered_many, key=lambda each: each.log.notification_id)
        self._unlocking = Coalescer(self._unlock_many, key=lambda log: log.notification_id)

    @asynccontextmanager
    async def exclusive(self, notification_id: UUID) -> AsyncIterator[DeliveryLog]:
        """Hold the notification's lock for the whole delivery, across its statements."""
        while (twin := self._in_hand.get(notification_id)) is not None:
            await twin.wait()
        released = self._in_hand[notification_id] = asyncio.Event()
        try:
            log = DeliveryLog(self, notification_id, await self._acquire(notification_id))
            try:
                yield log
            finally:
                if not log.released:
                    await self._unlocking(log)
        finally:
            del self._in_hand[notification_id]
            released.set()

    async def run(self, generation: int, method: str, sql: str, *args: Any) -> Any:
        """One statement of the delivery whose lock `generation` holds, on its own."""
        return await self._connection.run(generation, method, sql, *args)

    async def close(self) -> None:
        """Give the connection back (no delivery is in hand: their locks were let go)."""
        await self._connection.close()

    async def _acquire(self, notification_id: UUID) -> int:
        delay, waited = LOCK_RETRY_SECONDS[0], 0.0
        while (generation := await self._locking(notification_id)) is None:
            if waited >= LOCK_WAIT_SECONDS:
                raise NotificationBusy(f"notification {notification_id} is being delivered elsewhere")
            await asyncio.sleep(delay)
            waited += delay
            delay = min(LOCK_RETRY_SECONDS[1], delay * 2)
        return generation

    async def _lock_many(self, notification_ids: list[UUID]) -> list[int | None]:
        async with self._connection.statement() as (conn, generation):
            rows = await conn.fetch(TRY_LOCKS, LOCK_CLASS, [lock_key(each) for each in notification_ids])
        return [generation if row["locked"] else None for row in rows]

    async def _unlock_many(self, logs: list[DeliveryLog]) -> list[None]:
        async with self._connection.statement() as (conn, generation):
            # A lock taken on a connection since lost went with it.
            keys = [lock_key(log.notification_id) for log in logs if log.generation == generation]
            if keys:
                await conn.execute(UNLOCKS, LOCK_CLASS, keys)
        return [None] * len(logs)

    async def _open_many(self, openings: list[_Opening]) -> list[Any]:
        async with self._connection.statement() as (conn, generation):
            live = [each for each in openings if each.log.generation == generation]
            requests = [each.request for each in live]
            rows = iter(await conn.fetch(
                OPEN, [r.notification_id for r in requests], [r.template for r in requests],
                [r.user_id for r in requests], [r.payment_id for r in requests], _now(),
                [r.schedule_id for r in requests], [each.first_channel for each in live],
                [each.message_id for each in live],
            ) if live else ())
        return [next(rows) if each.log.generation == generation else self._connection.lost()
                for each in openings]

    async def _delivered_many(self, accepted: list[_Accepted]) -> list[Any]:
        async with self._connection.statement() as (conn, generation):
            live = [each for each in accepted if each.log.generation == generation]
            if live:
                await conn.execute(
                    DELIVERED, LOCK_CLASS, [lock_key(each.log.notification_id) for each in live],
                    [each.log.notification_id for each in live], [each.attempt_id for each in live],
                    [each.http_attempts for each in live], [each.provider_id for each in live],
                    [each.channel for each in live], _now(),
                )
                for each in live:
                    each.log.released = True
        return [None if each.log.generation == generation else self._connection.lost() for each in accepted]
