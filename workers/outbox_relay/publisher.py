"""Publish a batch of claimed outbox rows and sort each row into an outcome."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable
from dataclasses import dataclass, field

from aiokafka import AIOKafkaProducer
from aiokafka.errors import InvalidTopicError, MessageSizeTooLargeError
from aiokafka.partitioner import DefaultPartitioner
from aiokafka.record.default_records import DefaultRecordBatchBuilder

from services.booking.adapters.outbox import OutboxRow
from services.common.envelope import Envelope, encode_with_data_json
from services.common.kafka import KafkaSettings, TopicCreationFailed, ensure_topics
from workers.outbox_relay.health import describe

Message = tuple[bytes, bytes, list[tuple[str, bytes]]]  # value, key, headers
Sent = tuple[list[OutboxRow], "asyncio.Future[object]"]  # a record batch's rows, its ack
# Errors that retrying can never fix: a record over KAFKA_MAX_REQUEST_SIZE (refused
# here as the producer's send() would refuse it), a topic name the broker rejects,
# a row that cannot be encoded.
PERMANENT = (MessageSizeTooLargeError, InvalidTopicError, ValueError, TypeError)
INVALID_TOPIC = 17
MAX_ERROR_TEXT = 1000


@dataclass
class Outcome:
    published: list[OutboxRow] = field(default_factory=list)
    failed: list[tuple[int, str]] = field(default_factory=list)
    dead: list[tuple[int, str]] = field(default_factory=list)
    acked_at: float = 0.0
    transient_error: BaseException | None = None

    def fail(self, row: OutboxRow, error: BaseException) -> None:
        if isinstance(error, PERMANENT):
            self.dead.append((row.id, describe(error)[:MAX_ERROR_TEXT]))
            return
        self.failed.append((row.id, describe(error)[:MAX_ERROR_TEXT]))
        self.transient_error = self.transient_error or error


def to_message(row: OutboxRow) -> Message:
    envelope = Envelope(
        row.event_id, row.event_type, row.event_version, row.occurred_at,
        row.aggregate_type, row.aggregate_id, row.trace_id,
    )
    return encode_with_data_json(envelope, row.payload.encode()), envelope.key, envelope.headers


class Publisher:
    def __init__(
        self, producer: AIOKafkaProducer, settings: KafkaSettings, required_topics: Iterable[str]
    ) -> None:
        self._producer = producer
        self._settings = settings
        self._timeout = settings.kafka_request_timeout_ms / 1000
        self._required = set(required_topics)
        self._ensured: set[str] = set()
        self._partitioner = DefaultPartitioner()

    def forget_topics(self) -> None:
        """Check topics again before the next send (a memory broker restarts empty)."""
        self._ensured.clear()

    async def publish(self, rows: list[OutboxRow]) -> Outcome:
        outcome = Outcome()
        rows = await self._with_topics(rows, outcome)
        sent = await self._enqueue(rows, outcome)
        if sent:
            await self._await_acks(sent, outcome)
        return outcome

    async def _with_topics(self, rows: list[OutboxRow], outcome: Outcome) -> list[OutboxRow]:
        """Create the batch's missing topics; keep the rows whose topic can be used."""
        new = ({row.topic for row in rows} | self._required) - self._ensured
        if not new:
            return rows
        try:
            await ensure_topics(self._settings, new)
        except TopicCreationFailed as error:
            refused = InvalidTopicError(str(error)) if error.code == INVALID_TOPIC else error
            for row in rows:
                outcome.fail(row, refused)
            return []
        except Exception as error:  # any admin failure means "retry later"
            for row in rows:
                outcome.fail(row, error)
            return []
        self._ensured |= new
        return rows

    async def _enqueue(self, rows: list[OutboxRow], outcome: Outcome) -> list[Sent]:
        """Hand the rows to the producer as one record batch per partition and topic."""
        try:
            groups = await self._by_partition(rows, outcome)
        except Exception as error:  # no metadata: the broker is unreachable
            dead = {row_id for row_id, _ in outcome.dead}
            for row in rows:
                if row.id not in dead:
                    outcome.fail(row, error)
            return []
        sent: list[Sent] = []
        for (topic, partition), messages in groups.items():
            sent += await self._send_partition(topic, partition, messages, outcome)
        return sent

    async def _by_partition(
        self, rows: list[OutboxRow], outcome: Outcome
    ) -> dict[tuple[str, int], list[tuple[OutboxRow, Message]]]:
        # send() does this per record at ~3x the cost; the partitioner is the one
        # send() uses, so a key lands where any other producer would put it.
        groups: dict[tuple[str, int], list[tuple[OutboxRow, Message]]] = {}
        partitions: dict[str, list[int]] = {}
        for row in rows:
            try:
                message = checked(to_message(row), self._settings.kafka_max_request_size)
            except PERMANENT as error:
                outcome.fail(row, error)
                continue
            if row.topic not in partitions:
                partitions[row.topic] = list(await self._producer.partitions_for(row.topic))
            choices = partitions[row.topic]
            partition = self._partitioner(message[1], choices, choices)
            groups.setdefault((row.topic, partition), []).append((row, message))
        return groups

    async def _send_partition(
        self, topic: str, partition: int, messages: list[tuple[OutboxRow, Message]],
        outcome: Outcome,
    ) -> list[Sent]:
        sent: list[Sent] = []
        batch, members = self._producer.create_batch(), list[OutboxRow]()
        for index, (row, (value, key, headers)) in enumerate(messages):
            if batch.append(key=key, value=value, timestamp=None, headers=headers) is None:
                try:
                    future = await self._producer.send_batch(batch, topic, partition=partition)
                except Exception as error:  # the producer's buffer stayed full
                    for unsent, _ in messages[index - len(members):]:
                        outcome.fail(unsent, error)
                    return sent
                sent.append((members, future))
                batch, members = self._producer.create_batch(), list[OutboxRow]()
                # A record within max_request_size always fits an empty batch.
                batch.append(key=key, value=value, timestamp=None, headers=headers)
            members.append(row)
        try:
            sent.append((members, await self._producer.send_batch(batch, topic, partition=partition)))
        except Exception as error:
            for unsent in members:
                outcome.fail(unsent, error)
        return sent

    async def _await_acks(self, sent: list[Sent], outcome: Outcome) -> None:
        futures = [future for _, future in sent]
        # Bounded by the request timeout (shorter than the lease) so that a stuck
        # batch goes back to the table before another relay could claim it.
        await asyncio.wait(futures, timeout=self._timeout)
        outcome.acked_at = time.time()
        for rows, future in sent:
            if not future.done():
                # It may still be delivered: the rows go back and are sent again
                # (at least once). Its late result must not be reported as unhandled.
                future.add_done_callback(_ignore_result)
                error: BaseException | None = TimeoutError(
                    "no acknowledgement within the request timeout")
            else:
                error = future.exception()
            for row in rows:
                if error is None:
                    outcome.published.append(row)
                else:
                    outcome.fail(row, error)


def checked(message: Message, max_request_size: int) -> Message:
    """Refuse a record the producer would refuse, before it can fail a whole batch."""
    value, key, headers = message
    size = DefaultRecordBatchBuilder.estimate_size_in_bytes(key, value, headers)
    if size > max_request_size:
        raise MessageSizeTooLargeError(
            f"the record is {size} bytes, more than the maximum request size"
            f" {max_request_size} (KAFKA_MAX_REQUEST_SIZE)")
    return message


def _ignore_result(future: asyncio.Future[object]) -> None:
    if not future.cancelled():
        future.exception()
