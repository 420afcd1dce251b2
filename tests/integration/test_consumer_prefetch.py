"""A consumer worker that falls behind holds a bounded number of messages, not the backlog."""

from __future__ import annotations

import asyncio
import time

import pytest
from aiokafka import AIOKafkaProducer, TopicPartition

from services.common.envelope import Envelope, encode
from tests.consumer_support import running_worker
from tests.relay_support import topic_with_dead_letters
from workers.common.kafka_worker import FETCH_WAIT_MS, PREFETCH_MESSAGES, KafkaWorker

pytestmark = pytest.mark.integration

PARTITIONS = 8
BACKLOG = 1_000
# The rest of one poll, waiting for a slot behind the messages in hand.
HELD_AT_MOST = PREFETCH_MESSAGES


class Gate:
    """A handler that waits at the gate until it opens, counting what it was given."""

    def __init__(self) -> None:
        self.open = asyncio.Event()
        self.handled = 0

    async def __call__(self, envelope: Envelope) -> None:
        self.handled += 1
        await self.open.wait()


async def send_backlog(producer: AIOKafkaProducer, topic: str) -> None:
    sent = []
    for n in range(BACKLOG):
        envelope = Envelope.new("Happened", "thing", f"thing-{n}", {"n": n, "pad": "x" * 500})
        sent.append(await producer.send(topic, encode(envelope), key=envelope.key,
                                        headers=envelope.headers))
    await asyncio.gather(*sent)


async def taken(worker: KafkaWorker, topic: str) -> int:
    """Messages the worker has taken from its Kafka client: handled, in hand or waiting for a slot."""
    kafka = worker.kafka_consumer
    assert kafka is not None
    positions = [await kafka.position(TopicPartition(topic, p)) for p in range(PARTITIONS)]
    return sum(positions)


async def held_while_stuck(worker: KafkaWorker, topic: str, gate: Gate) -> list[int]:
    """Sample what the worker holds while its first message is stuck, until that settles."""
    deadline = time.monotonic() + 30
    while gate.handled == 0:  # the group is joined and the first message is in hand
        assert time.monotonic() < deadline, "no message reached the handler"
        await asyncio.sleep(0.1)
    samples: list[int] = []
    while len(samples) < 6 or len(set(samples[-6:])) > 1:
        assert time.monotonic() < deadline, f"never settled: {samples}"
        samples.append(await taken(worker, topic) - gate.handled)
        await asyncio.sleep(0.5)
    return samples


async def test_a_worker_behind_a_backlog_holds_a_bounded_number_of_messages(
    kafka_bootstrap: str, producer: AIOKafkaProducer
) -> None:
    topic = await topic_with_dead_letters(kafka_bootstrap, "prefetch", partitions=PARTITIONS)
    await send_backlog(producer, topic)
    gate = Gate()
    async with running_worker(kafka_bootstrap, topic, PARTITIONS, producer,
                              {"Happened": gate}) as (worker, _):
        try:
            samples = await held_while_stuck(worker, topic, gate)
            assert max(samples) <= HELD_AT_MOST, samples

            gate.open.set()
            deadline = time.monotonic() + 60
            while gate.handled < BACKLOG:
                assert time.monotonic() < deadline, f"handled {gate.handled} of {BACKLOG}"
                await asyncio.sleep(0.1)
        finally:
            gate.open.set()  # a stopping worker lets the messages in hand finish


async def test_a_worker_fetches_with_a_short_wait_not_aiokafkas_default(
    kafka_bootstrap: str, producer: AIOKafkaProducer
) -> None:
    """aiokafka's default fetch wait is 1.5 s, which the embedded broker holds in full even
    when a message arrives (workers/common/kafka_worker.py, FETCH_WAIT_MS)."""
    topic = await topic_with_dead_letters(kafka_bootstrap, "fetch-wait", partitions=1)

    async def ignore(_: Envelope) -> None:
        return None

    async with running_worker(kafka_bootstrap, topic, 1, producer,
                              {"Happened": ignore}) as (worker, _):
        deadline = time.monotonic() + 30
        # The fetcher is built when the consumer starts.
        while worker.kafka_consumer is None or worker.kafka_consumer._fetcher is None:
            assert time.monotonic() < deadline, "the worker's Kafka consumer never started"
            await asyncio.sleep(0.1)
        assert worker.kafka_consumer._fetcher._fetch_max_wait_ms == FETCH_WAIT_MS < 1500
