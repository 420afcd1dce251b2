"""What the DLQ CLI shows: parked Kafka messages and dead outbox rows, as one kind of item."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

from workers.common.command_line import CliError
from workers.common.dead_letters import DeadLetter

PARKED = "parked"
REPLAYED = "replayed"
QUARANTINED = "quarantined"
PURGED = "purged"
STATUSES = (PARKED, REPLAYED, QUARANTINED, PURGED)
# The status that follows each audited action.
STATUS_AFTER = {"replay": REPLAYED, "quarantine": QUARANTINED, "purge": PURGED}

KAFKA_ID = re.compile(r"^(?P<topic>[A-Za-z0-9._-]+):(?P<partition>\d+):(?P<offset>\d+)$")
OUTBOX_ID = re.compile(r"^outbox:(?P<row>\d+)$")


@dataclass(frozen=True, slots=True)
class Parked:
    id: str
    source: Literal["kafka", "outbox"]
    topic: str
    event_type: str | None
    event_id: str | None
    aggregate_id: str | None
    error_class: str
    error_message: str
    attempts: int
    failed_at: datetime
    consumer: str
    replay_count: int
    status: str = PARKED
    letter: DeadLetter | None = field(default=None, repr=False)
    payload: Any = field(default=None, repr=False)

    def summary(self, now: datetime) -> dict[str, Any]:
        return {
            "id": self.id, "source": self.source, "topic": self.topic,
            "event_type": self.event_type, "event_id": self.event_id,
            "aggregate_id": self.aggregate_id, "error_class": self.error_class,
            "error": self.error_message, "attempts": self.attempts,
            "failed_at": self.failed_at.isoformat(), "consumer": self.consumer,
            "replay_count": self.replay_count, "status": self.status,
            "age_seconds": round((now - self.failed_at).total_seconds(), 3),
        }


@dataclass(frozen=True)
class Filters:
    topics: tuple[str, ...] = ()
    event_types: tuple[str, ...] = ()
    aggregate_ids: tuple[str, ...] = ()
    older_than: timedelta | None = None
    newer_than: timedelta | None = None
    statuses: tuple[str, ...] = (PARKED, QUARANTINED)

    @property
    def narrows_messages(self) -> bool:
        """Whether some message of the selected topics may be left out."""
        return bool(self.event_types or self.aggregate_ids or self.older_than or self.newer_than)

    def matches(self, item: Parked, now: datetime) -> bool:
        age = now - item.failed_at
        return (
            (not self.topics or item.topic in self.topics)
            and (not self.event_types or item.event_type in self.event_types)
            and (not self.aggregate_ids or item.aggregate_id in self.aggregate_ids)
            and (self.older_than is None or age >= self.older_than)
            and (self.newer_than is None or age <= self.newer_than)
            and item.status in self.statuses
        )


def original_topic(name: str) -> str:
    """Accept a topic or its DLQ topic on the command line; return the original topic."""
    return name.removesuffix(".dlq")


def check_id(message_id: str) -> str:
    if KAFKA_ID.match(message_id) or OUTBOX_ID.match(message_id):
        return message_id
    raise CliError(
        f"bad id {message_id!r}: expected <dlq topic>:<partition>:<offset> or outbox:<row id>",
        code=2,
    )
