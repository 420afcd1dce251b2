"""Read, re-send and measure consumption of the system's topics, as an operator would."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from services.common.broker_offsets import log_end_offsets


async def read_all(kafka: str, topic: str) -> list[ConsumerRecord[bytes, bytes]]:
    """Every record of `topic` up to its current end, read without a consumer group."""
    consumer = AIOKafkaConsumer(bootstrap_servers=kafka, group_id=None, enable_auto_commit=False)
    await consumer.start()
    try:
        partitions = [TopicPartition(topic, p) for p in sorted(await _partitions(consumer, topic))]
        end = await log_end_offsets(consumer, partitions)
        await consumer.seek_to_beginning(*partitions)
        records: list[ConsumerRecord[bytes, bytes]] = []
        while [tp for tp in partitions if await consumer.position(tp) < end[tp]]:
            for batch in (await consumer.getmany(*partitions, timeout_ms=500)).values():
                records.extend(record for record in batch if record.offset < end[TopicPartition(
                    record.topic, record.partition)])
        return records
    finally:
        await consumer.stop()


async def _partitions(consumer: AIOKafkaConsumer, topic: str) -> set[int]:
    await consumer.topics()
    return consumer.partitions_for_topic(topic) or set()


async def send_all(kafka: str, records: Iterable[Any], topic: str | None = None) -> int:
    """Send copies of `records` (same key, value and headers), each acknowledged."""
    producer = AIOKafkaProducer(bootstrap_servers=kafka, acks="all")
    await producer.start()
    count = 0
    try:
        for record in records:
            await producer.send_and_wait(topic or record.topic, record.value, key=record.key,
                                         headers=list(record.headers))
            count += 1
    finally:
        await producer.stop()
    return count


async def lag(kafka: str, group: str, topic: str) -> int:
    """Messages of `topic` the consumer group has not committed yet."""
    consumer = AIOKafkaConsumer(bootstrap_servers=kafka, group_id=None)
    await consumer.start()
    try:
        partitions = [TopicPartition(topic, p) for p in await _partitions(consumer, topic)]
        end = await log_end_offsets(consumer, partitions)
    finally:
        await consumer.stop()
    committed = await committed_offsets(kafka, group, partitions)
    return sum(end[tp] - max(committed[tp], 0) for tp in partitions)


async def committed_offsets(
    kafka: str, group: str, partitions: list[TopicPartition]
) -> dict[TopicPartition, int]:
    """The group's committed offset of each partition, -1 where it committed none."""
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka)
    await admin.start()
    try:
        offsets = await admin.list_consumer_group_offsets(group, partitions=partitions)
    finally:
        await admin.close()
    return {tp: offsets[tp].offset if tp in offsets else -1 for tp in partitions}


async def wait_consumed(kafka: str, pairs: Iterable[tuple[str, str]], within: float = 60.0) -> None:
    """Wait until each (group, topic) has committed everything on the topic."""
    deadline = time.monotonic() + within
    for group, topic in pairs:
        while (behind := await lag(kafka, group, topic)) > 0:
            assert time.monotonic() < deadline, f"{group} is {behind} behind on {topic}"
            await asyncio.sleep(0.2)
