"""A consumer worker handles several messages at once: each key in order, no offset committed early."""

from __future__ import annotations

import asyncio
import random
import time
from collections import defaultdict

import pytest
from aiokafka import AIOKafkaProducer, TopicPartition

from services.common.envelope import Envelope
from tests.consumer_support import running_worker, send
from tests.e2e.kafka_tools import committed_offsets
from tests.relay_support import topic_with_dead_letters
from workers.common.kafka_worker import admission_group

pytestmark = pytest.mark.integration

CONCURRENCY = 8


async def committed(kafka: str, group: str, partitions: list[TopicPartition]) -> dict[int, int]:
    offsets = await committed_offsets(kafka, group, partitions)
    return {tp.partition: offset for tp, offset in offsets.items()}


async def until(condition, what: str, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


async def test_many_keys_at_once_each_key_in_order_every_message_once_and_all_committed(
    kafka_bootstrap: str, producer: AIOKafkaProducer
) -> None:
    partitions, keys, per_key = 4, 40, 10
    topic = await topic_with_dead_letters(kafka_bootstrap, "concurrent", partitions=partitions)
    messages = [(f"booking-{k}", n) for n in range(per_key) for k in range(keys)]
    await send(producer, topic, messages)
    seen: dict[str, list[int]] = defaultdict(list)
    running, most = 0, 0
    rng = random.Random(5)

    async def handle(envelope: Envelope) -> None:
        nonlocal running, most
        running += 1
        most = max(most, running)
        await asyncio.sleep(rng.uniform(0, 0.01))
        seen[envelope.aggregate_id].append(envelope.data["n"])
        running -= 1

    async with running_worker(kafka_bootstrap, topic, partitions, producer,
                              {"Happened": handle}, consumer_concurrency=CONCURRENCY,
                              consumer_commit_interval_seconds=0.2) as (_, settings):
        await until(lambda: sum(map(len, seen.values())) >= len(messages), "every message")
        tps = [TopicPartition(topic, p) for p in range(partitions)]
        await until_committed(kafka_bootstrap, settings.group("worker"), tps, len(messages))

    assert all(seen[f"booking-{k}"] == list(range(per_key)) for k in range(keys)), dict(seen)
    assert 1 < most <= CONCURRENCY


async def test_an_offset_is_never_committed_past_a_message_still_in_hand(
    kafka_bootstrap: str, producer: AIOKafkaProducer
) -> None:
    topic = await topic_with_dead_letters(kafka_bootstrap, "in-hand", partitions=1)
    await send(producer, topic, [(f"booking-{n}", n) for n in range(50)])
    stuck_at, gate, handled = 10, asyncio.Event(), set()

    async def handle(envelope: Envelope) -> None:
        n = envelope.data["n"]
        if n == stuck_at:
            await gate.wait()
        handled.add(n)

    async with running_worker(kafka_bootstrap, topic, 1, producer,
                              {"Happened": handle}, consumer_concurrency=CONCURRENCY,
                              consumer_commit_interval_seconds=0.2) as (_, settings):
        group, tps = settings.group("worker"), [TopicPartition(topic, 0)]
        try:
            # What the slots allow past the stuck message is handled: a group is admitted
            # only whole, so up to a group's size less one slots may stay free ...
            least = stuck_at + CONCURRENCY - admission_group(CONCURRENCY)
            await until(lambda: len(handled) >= least, "the messages around it")
            await asyncio.sleep(1.0)  # ... and several commit intervals pass
            reached = len(handled)
            assert least <= reached <= stuck_at + CONCURRENCY - 1  # the reading stopped there
            await asyncio.sleep(0.5)
            assert len(handled) == reached
            assert await committed(kafka_bootstrap, group, tps) == {0: stuck_at}
        finally:
            gate.set()
        await until(lambda: len(handled) == 50, "the rest once it is free")
        await until_committed(kafka_bootstrap, group, tps, 50)


async def until_committed(kafka: str, group: str, tps: list[TopicPartition], total: int) -> None:
    """Until the committed offsets add up to `total`: every message sent, since none passes its end."""
    deadline = time.monotonic() + 30
    while sum((now := await committed(kafka, group, tps)).values()) != total:
        assert time.monotonic() < deadline, f"committed {now}, expected {total} in all"
        await asyncio.sleep(0.2)
