"""Run an `EventConsumer` as a faust-streaming agent in a worker process.

faust only moves raw bytes here (`value_serializer="raw"`): a value faust itself
fails to decode crashes the agent, so decoding is the consumer's job, where a
poison message is parked instead. The web server is off (several workers share a
machine); metrics are served by prometheus_client on a port of the worker's own.
"""

from __future__ import annotations

import asyncio
import logging
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import faust
from aiokafka import AIOKafkaProducer
from faust.types import TransportT
from prometheus_client import start_http_server

from workers.common.consumer import EventConsumer, RawMessage
from workers.common.consumer_settings import ConsumerSettings
from workers.common.faust_transport import Transport
from workers.common.kafka import IdempotenceRefused, ensure_topics, start_producer, system_topics
from workers.common.ordered_concurrency import OrderedConcurrency

log = logging.getLogger("workers.faust")
T = TypeVar("T")
ConsumerFactory = Callable[[], AbstractAsyncContextManager[EventConsumer]]

# Messages a worker takes from aiokafka ahead of those in hand, per poll and in its
# stream buffer. faust's defaults (every fetched record per poll, 4,096 buffered) make
# a worker that falls behind hold thousands of messages, tens of MB that the allocator
# keeps after the backlog drains. A message takes milliseconds and a worker handles
# CONSUMER_CONCURRENCY (8) at once, so a hundred ahead is plenty to stay busy.
PREFETCH_MESSAGES = 100
# How long a stopping worker lets the messages in hand finish.
SHUTDOWN_GRACE_SECONDS = 5.0


class WorkerApp(faust.App):
    """A faust app whose consumers fetch with our wait (faust_transport.py)."""

    def _new_transport(self) -> TransportT:
        return Transport(self.conf.broker_consumer, self)


def create_app(settings: ConsumerSettings, part: str) -> faust.App:
    group = settings.group(part)
    data_dir = settings.consumer_data_dir or str(Path(tempfile.gettempdir()) / f"faust-{group}")
    return WorkerApp(
        group,
        broker=[f"kafka://{server.strip()}" for server in settings.kafka_bootstrap_servers.split(",")],
        value_serializer="raw", key_serializer="raw",
        web_enabled=False, topic_disable_leader=True, store="memory://", datadir=data_dir,
        autodiscover=False, consumer_auto_offset_reset="earliest",
        broker_session_timeout=settings.consumer_session_timeout_seconds,
        broker_rebalance_timeout=settings.consumer_rebalance_timeout_seconds,
        broker_heartbeat_interval=min(3.0, settings.consumer_session_timeout_seconds / 3),
        broker_commit_interval=settings.consumer_commit_interval_seconds,
        topic_partitions=settings.kafka_partitions,
        topic_replication_factor=settings.kafka_replication_factor,
        broker_max_poll_records=PREFETCH_MESSAGES, stream_buffer_maxsize=PREFETCH_MESSAGES,
    )


def raw_message(event: Any) -> RawMessage:
    message = event.message
    headers = message.headers or ()
    if isinstance(headers, Mapping):
        headers = headers.items()
    return RawMessage(
        message.topic, message.partition, message.offset, message.key, message.value,
        tuple((str(name), bytes(value or b"")) for name, value in headers),
    )


def attach_consumer(
    app: faust.App, topics: Sequence[str], factory: ConsumerFactory, *, concurrency: int
) -> None:
    """Feed every message of `topics` to the consumer `factory` builds, `concurrency` at once.

    Messages of one key are handled in order, one at a time, and every message is
    acknowledged in offset order once all before it in its partition are handled or
    parked (`OrderedConcurrency`). faust's own agent concurrency is not used: above
    1, faust 0.15 may commit past a message still in flight (its gap check at the
    head of the acked offsets is off by one), and a crash would then skip it. With
    acks in offset order that check never matters.
    """
    channel = app.topic(*topics, value_serializer="raw", key_serializer="raw")
    started: list[EventConsumer] = []

    async def consume(stream: Any) -> None:
        if not started:
            # Its resources close with the app, after the agent has stopped.
            try:
                started.append(await app.add_async_context(factory()))
            except IdempotenceRefused as error:
                # Only the agent would crash, leaving a worker that consumes nothing.
                log.critical("%s", error)
                await app.crash(error)
                raise
        consumer, in_hand = started[0], OrderedConcurrency(concurrency)
        try:
            async for event in stream.noack().events():
                message = raw_message(event)
                await in_hand.submit(
                    lane=(message.topic, message.partition), key=message.key,
                    work=partial(consumer.process, message), release=partial(stream.ack, event),
                )
        finally:
            # Stopping: what does not finish in time is read again by whoever resumes.
            await in_hand.close(grace=SHUTDOWN_GRACE_SECONDS)

    app.agent(channel, name=f"{app.conf.id}.consume", concurrency=1)(consume)


async def until_ready(what: str, attempt: Callable[[], Awaitable[T]], max_delay: float = 10.0) -> T:
    """Retry `attempt` until it succeeds: a dependency still starting is waited for."""
    delay, failures = 0.2, 0
    while True:
        try:
            return await attempt()
        except IdempotenceRefused:
            raise  # a setting to change: waiting would never end
        except Exception as error:
            failures += 1
            if failures == 1 or failures % 10 == 0:
                log.warning("%s unavailable (%r); retrying", what, error)
            await asyncio.sleep(delay)
            delay = min(max_delay, delay * 2)


@asynccontextmanager
async def dead_letter_producer(settings: ConsumerSettings, client_id: str) -> AsyncIterator[AIOKafkaProducer]:
    producer = await until_ready("broker", lambda: start_producer(settings, client_id=client_id))
    try:
        yield producer
    finally:
        await producer.stop()


def run_worker(app: faust.App, settings: ConsumerSettings, metrics_port: int) -> None:
    """Run the faust worker in the foreground until SIGINT/SIGTERM."""
    # aiokafka logs every failed reconnect (the workers log outcomes).
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    # Subscribing to a topic that does not exist yet would leave its partitions unassigned.
    loop.run_until_complete(until_ready("broker", lambda: ensure_topics(settings, system_topics())))
    if metrics_port:
        start_http_server(metrics_port, addr=settings.worker_metrics_host)
    # Logging is the process's own (configure_logging in main): faust must not replace it.
    worker = faust.Worker(
        app, loop=loop, loglevel=settings.log_level.lower(), quiet=True, redirect_stdouts=False,
        override_logging=False,
    )
    # Without its logging setup faust keeps a terminal spinner instead of logging "Ready",
    # the line that says the group is joined.
    worker.spinner = None
    worker.execute_from_commandline()
