"""The CLI's Kafka side: read DLQ topics, re-drive messages, remember replay progress."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaError

from services.common.broker_offsets import log_end_offsets
from services.common.kafka import IdempotenceRefused, start_producer
from services.common.topics import dead_letter_topic
from workers.common.command_line import CliError
from workers.common.dead_letters import DeadLetter
from workers.dlq.config import Settings

READ_TIMEOUT_SECONDS = 30


def unreachable(settings: Settings, error: BaseException) -> CliError:
    text = str(error)
    if not text.startswith(type(error).__name__):
        text = f"{type(error).__name__}: {text}"
    return CliError(f"cannot reach the Kafka broker at {settings.kafka_bootstrap_servers}: {text}")


class DeadLetterTopics:
    """A consumer in the replay group, used both to read DLQ topics and to commit progress."""

    def __init__(self, settings: Settings, consumer: AIOKafkaConsumer) -> None:
        self._settings = settings
        self._consumer = consumer

    async def topics(self, originals: tuple[str, ...]) -> list[str]:
        """The DLQ topics on the broker, limited to those of `originals` when given."""
        existing = await self._consumer.topics()
        if originals:
            wanted = {dead_letter_topic(name) for name in originals}
            return sorted(wanted & existing)
        return sorted(name for name in existing if name.endswith(".dlq"))

    async def read(self, topics: list[str], from_committed: bool = False) -> list[DeadLetter]:
        """Every message in `topics` now (or only past the replay group's committed offsets)."""
        partitions = self._partitions(topics)
        if not partitions:
            return []
        ends = await log_end_offsets(self._consumer, partitions)
        starts = await self._consumer.beginning_offsets(partitions)
        for tp in partitions:
            committed = await self._consumer.committed(tp) if from_committed else None
            self._consumer.seek(tp, max(starts[tp], committed or 0))
        return await self._drain(ends)

    async def commit(self, letter: DeadLetter) -> None:
        """Remember that `replay --all` has dealt with `letter` and everything before it."""
        tp = TopicPartition(letter.dlq_topic, letter.partition)
        await self._consumer.commit({tp: letter.offset + 1})

    def _partitions(self, topics: list[str]) -> list[TopicPartition]:
        return [
            TopicPartition(topic, partition)
            for topic in topics
            for partition in sorted(self._consumer.partitions_for_topic(topic) or ())
        ]

    async def _drain(self, ends: dict[TopicPartition, int]) -> list[DeadLetter]:
        letters: list[DeadLetter] = []
        deadline = time.monotonic() + READ_TIMEOUT_SECONDS
        remaining = {tp for tp, end in ends.items() if await self._consumer.position(tp) < end}
        while remaining:
            if time.monotonic() > deadline:
                raise CliError("timed out reading the DLQ topics")
            batches = await self._consumer.getmany(*remaining, timeout_ms=500)
            for tp, records in batches.items():
                letters.extend(
                    DeadLetter(r.topic, r.partition, r.offset, r.key, r.value,
                               list(r.headers), r.timestamp)
                    for r in records if r.offset < ends[tp]
                )
            remaining = {tp for tp in remaining if await self._consumer.position(tp) < ends[tp]}
        letters.sort(key=lambda letter: (letter.dlq_topic, letter.partition, letter.offset))
        return letters


@asynccontextmanager
async def dead_letter_topics(settings: Settings) -> AsyncIterator[DeadLetterTopics]:
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap_servers,
        group_id=settings.dlq_replay_group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        request_timeout_ms=settings.kafka_request_timeout_ms,
    )
    try:
        await consumer.start()
    except KafkaError as error:
        await consumer.stop()
        raise unreachable(settings, error) from None
    try:
        yield DeadLetterTopics(settings, consumer)
    finally:
        await consumer.stop()


@asynccontextmanager
async def replay_producer(settings: Settings) -> AsyncIterator[AIOKafkaProducer]:
    try:
        producer = await start_producer(settings, client_id="booking-dlq")
    except IdempotenceRefused as error:
        raise CliError(str(error), code=2) from None
    except KafkaError as error:
        raise unreachable(settings, error) from None
    try:
        yield producer
    finally:
        await producer.stop()
