"""A consumer worker run inside the test's event loop, fed by an `EventConsumer`."""

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from aiokafka import AIOKafkaProducer

from services.common.consumer_settings import ConsumerSettings
from services.common.envelope import Envelope, encode
from workers.common.consumer import EventConsumer, Handler, IsOutage, Route, never_an_outage
from workers.common.kafka_worker import KafkaWorker


async def send(producer: AIOKafkaProducer, topic: str, messages: list[tuple[str, int]]) -> None:
    """One "Happened" event per (key, n), sent one after another so each key's order is the log's."""
    for key, n in messages:
        envelope = Envelope.new("Happened", "thing", key, {"n": n})
        await (await producer.send(topic, encode(envelope), key=envelope.key, headers=envelope.headers))


@asynccontextmanager
async def running_worker(
    kafka: str, topic: str, partitions: int, producer: AIOKafkaProducer,
    routes: dict[str, Handler], is_outage: IsOutage = never_an_outage, **settings: Any,
) -> AsyncIterator[tuple[KafkaWorker, ConsumerSettings]]:
    """Start a worker consuming `topic` in a group of its own; stop it on the way out."""
    config = ConsumerSettings(
        kafka_bootstrap_servers=kafka, kafka_enable_idempotence=False, kafka_partitions=partitions,
        consumer_group_prefix=topic.replace(".", "-"), **settings,
    )
    handler = EventConsumer("test-worker", {kind: Route(handler) for kind, handler in routes.items()},
                            producer, is_outage=is_outage)
    worker = KafkaWorker(config, config.group("worker"), [topic], handler,
                         concurrency=config.consumer_concurrency)
    running = asyncio.create_task(worker.run())
    try:
        yield worker, config
    finally:
        worker.stop()
        await running
