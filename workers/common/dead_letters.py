"""The dead-letter message format: how a consumer parks a message it cannot handle.

A parked message keeps the original key, value (even if it is garbage) and headers,
goes to `<topic>.dlq`, and gains these headers (UTF-8 text):

    dlq-original-topic / dlq-original-partition / dlq-original-offset
    dlq-error-class / dlq-error-message   the exception that made the consumer give up
    dlq-attempts                          how many times the consumer tried
    dlq-failed-at                         ISO 8601 UTC
    dlq-consumer                          the consumer (group) that parked it
    dlq-replay-count                      how often `booking-dlq replay` re-drove it

`booking-dlq replay` sends the message back to its original topic with the dlq-*
headers removed and dlq-replay-count incremented; a consumer that parks it again
carries that count over (dead_letter_headers does), which is how the CLI's replay
limit catches a message that keeps failing.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from aiokafka import AIOKafkaProducer

from services.common.envelope import HEADER_EVENT_ID, HEADER_EVENT_TYPE, Headers, header
from services.common.topics import dead_letter_topic

PREFIX = "dlq-"
ORIGINAL_TOPIC = "dlq-original-topic"
ORIGINAL_PARTITION = "dlq-original-partition"
ORIGINAL_OFFSET = "dlq-original-offset"
ERROR_CLASS = "dlq-error-class"
ERROR_MESSAGE = "dlq-error-message"
ATTEMPTS = "dlq-attempts"
FAILED_AT = "dlq-failed-at"
CONSUMER = "dlq-consumer"
REPLAY_COUNT = "dlq-replay-count"

MAX_ERROR_MESSAGE = 2000
RawHeaders = Iterable[tuple[str, bytes | None]]


def replay_count(headers: RawHeaders | None) -> int:
    """How often the message carrying `headers` has been replayed from a DLQ."""
    return _int(header(headers, REPLAY_COUNT), 0)


def dead_letter_headers(
    *,
    topic: str,
    partition: int,
    offset: int,
    headers: RawHeaders | None,
    error: BaseException,
    attempts: int,
    consumer: str,
    failed_at: datetime | None = None,
) -> Headers:
    """The headers of a parked message: the original ones plus the dlq-* facts."""
    kept = [(key, value) for key, value in headers or () if not key.startswith(PREFIX)]
    facts = {
        ORIGINAL_TOPIC: topic,
        ORIGINAL_PARTITION: str(partition),
        ORIGINAL_OFFSET: str(offset),
        ERROR_CLASS: type(error).__name__,
        ERROR_MESSAGE: str(error)[:MAX_ERROR_MESSAGE],
        ATTEMPTS: str(attempts),
        FAILED_AT: (failed_at or datetime.now(UTC)).isoformat(),
        CONSUMER: consumer,
        REPLAY_COUNT: str(replay_count(headers)),
    }
    return [*((k, v) for k, v in kept if v is not None),
            *((name, value.encode()) for name, value in facts.items())]


async def park(
    producer: AIOKafkaProducer,
    *,
    topic: str,
    partition: int,
    offset: int,
    key: bytes | None,
    value: bytes | None,
    headers: RawHeaders | None,
    error: BaseException,
    attempts: int,
    consumer: str,
) -> Any:
    """Send a message that failed for good to `<topic>.dlq`; return once the broker acked it.

    Commit the consumer offset only after this returns, or a crash loses the message.
    """
    parked = dead_letter_headers(
        topic=topic, partition=partition, offset=offset, headers=headers, error=error,
        attempts=attempts, consumer=consumer,
    )
    future = await producer.send(dead_letter_topic(topic), value, key=key, headers=parked)
    return await future


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A message read back from a DLQ topic."""

    dlq_topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: Sequence[tuple[str, bytes]]
    timestamp_ms: int

    @property
    def message_id(self) -> str:
        return f"{self.dlq_topic}:{self.partition}:{self.offset}"

    @property
    def original_topic(self) -> str:
        fallback = self.dlq_topic.removesuffix(".dlq")
        return header(self.headers, ORIGINAL_TOPIC) or fallback

    @property
    def error_class(self) -> str:
        return header(self.headers, ERROR_CLASS) or "unknown"

    @property
    def error_message(self) -> str:
        return header(self.headers, ERROR_MESSAGE) or ""

    @property
    def attempts(self) -> int:
        return _int(header(self.headers, ATTEMPTS), 0)

    @property
    def consumer(self) -> str:
        return header(self.headers, CONSUMER) or "unknown"

    @property
    def replay_count(self) -> int:
        return replay_count(self.headers)

    @property
    def event_id(self) -> str | None:
        return header(self.headers, HEADER_EVENT_ID)

    @property
    def event_type(self) -> str | None:
        return header(self.headers, HEADER_EVENT_TYPE)

    @property
    def failed_at(self) -> datetime:
        text = header(self.headers, FAILED_AT)
        try:
            if text:
                return datetime.fromisoformat(text)
        except ValueError:
            pass
        return datetime.fromtimestamp(self.timestamp_ms / 1000, UTC)

    def replay_headers(self, count: int) -> Headers:
        """Original headers for the re-drive, with the replay count set to `count`."""
        kept = [(key, value) for key, value in self.headers if not key.startswith(PREFIX)]
        return [*kept, (REPLAY_COUNT, str(count).encode())]


def _int(text: str | None, default: int) -> int:
    try:
        return int(text) if text is not None else default
    except ValueError:
        return default
