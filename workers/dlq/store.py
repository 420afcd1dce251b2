"""The CLI's PostgreSQL side: the relay's dead outbox rows and the replay audit."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg
import orjson

from services.booking.adapters import outbox
from services.common.settings_types import asyncpg_dsn
from workers.common.command_line import CliError
from workers.dlq.model import OUTBOX_ID, Parked

LAST_ACTIONS = """
SELECT DISTINCT ON (message_id) message_id, action, event_id::text
FROM dlq_audit WHERE message_id = ANY($1::text[]) ORDER BY message_id, id DESC
"""

REPLAYS = """
SELECT message_id, count(*) FROM dlq_audit
WHERE action = 'replay' AND message_id = ANY($1::text[]) GROUP BY message_id
UNION ALL
SELECT event_id::text, count(*) FROM dlq_audit
WHERE action = 'replay' AND event_id = ANY($2::uuid[]) GROUP BY event_id
"""

RECORD = """
INSERT INTO dlq_audit (message_id, event_id, action, original_topic, replay_count, actor)
VALUES ($1, $2::uuid, $3, $4, $5, $6)
"""

HISTORY = """
SELECT action, replay_count, actor, at, original_topic FROM dlq_audit
WHERE message_id = $1 ORDER BY id
"""


@dataclass(frozen=True)
class Action:
    message_id: str
    event_id: str | None
    action: str
    topic: str
    replay_count: int
    actor: str


@asynccontextmanager
async def connect(database_url: str) -> AsyncIterator[DlqStore]:
    try:
        connection = await asyncpg.connect(asyncpg_dsn(database_url), timeout=10)
    except (OSError, TimeoutError, asyncpg.PostgresError) as error:
        raise CliError(f"cannot reach PostgreSQL: {type(error).__name__}: {error}") from None
    try:
        yield DlqStore(connection)
    finally:
        await connection.close()


class DlqStore:
    def __init__(self, connection: asyncpg.Connection) -> None:
        self._connection = connection

    async def dead_rows(self) -> list[Parked]:
        records = await outbox.dead_rows(self._connection)
        return [_parked_row(record) for record in records]

    async def last_actions(self, message_ids: list[str]) -> dict[str, tuple[str, str | None]]:
        records = await self._connection.fetch(LAST_ACTIONS, message_ids)
        return {record[0]: (record[1], record[2]) for record in records}

    async def replay_counts(self, message_ids: list[str], event_ids: list[str]) -> dict[str, int]:
        """Replays recorded, keyed by message id and by event id."""
        uuids = [event_id for event_id in map(as_uuid, event_ids) if event_id]
        records = await self._connection.fetch(REPLAYS, message_ids, uuids)
        return {record[0]: record[1] for record in records}

    async def record(self, action: Action) -> None:
        await self._connection.execute(RECORD, *_audit_values(action))

    async def requeue_row(self, action: Action) -> bool:
        """Give a dead outbox row back to the relay and audit it, in one transaction."""
        return await self._change_row(outbox.requeue_dead, action)

    async def delete_row(self, action: Action) -> bool:
        """Drop a dead outbox row for good (unblocking its aggregate) and audit it."""
        return await self._change_row(outbox.delete_dead, action)

    async def history(self, message_id: str) -> list[dict[str, Any]]:
        records = await self._connection.fetch(HISTORY, message_id)
        return [
            {"action": r["action"], "replay_count": r["replay_count"], "actor": r["actor"],
             "at": r["at"].isoformat(), "topic": r["original_topic"]}
            for r in records
        ]

    async def _change_row(
        self, change: Callable[[asyncpg.Connection, int], Awaitable[bool]], action: Action
    ) -> bool:
        match = OUTBOX_ID.match(action.message_id)
        assert match is not None
        async with self._connection.transaction():
            if not await change(self._connection, int(match["row"])):
                return False
            await self._connection.execute(RECORD, *_audit_values(action))
            # Wake the relays at commit: a requeued row, or the rows a dead one held
            # back, are publishable now rather than at the next poll.
            await outbox.wake_relays(self._connection)
        return True


def as_uuid(text: str | None) -> str | None:
    """The event id as a canonical UUID, or None: a garbage header must not break the audit."""
    try:
        return str(uuid.UUID(text)) if text else None
    except ValueError:
        return None


def _audit_values(action: Action) -> tuple[Any, ...]:
    return (action.message_id, as_uuid(action.event_id), action.action, action.topic,
            action.replay_count, action.actor)


def _parked_row(record: asyncpg.Record) -> Parked:
    error_class, _, message = (record["last_error"] or "unknown").partition(": ")
    dead_at: datetime = record["dead_at"]
    return Parked(
        id=f"outbox:{record['id']}", source="outbox", topic=record["topic"],
        event_type=record["event_type"], event_id=record["event_id"],
        aggregate_id=record["aggregate_id"], error_class=error_class, error_message=message,
        attempts=record["attempts"], failed_at=dead_at, consumer="outbox-relay",
        replay_count=0, payload=orjson.loads(record["payload"]),
    )

