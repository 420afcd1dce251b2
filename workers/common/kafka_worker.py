"""Run an `EventConsumer` on aiokafka's consumer, in the worker's one event loop.

Nothing stands between the broker and the handler: `getmany` takes up to
PREFETCH_MESSAGES, each goes to `OrderedConcurrency` (one key at a time, released in
offset order) in groups of half the messages a worker may hold, each group once it
fits whole, and the released offsets are committed every
CONSUMER_COMMIT_INTERVAL_SECONDS, when partitions are taken away and at the end. So a
crash never commits past a message still in hand; it can only repeat messages that
were handled, which every handler absorbs.

faust did the same with a consumer thread, a stream and an agent in between, and cost
the workers about 0.7 ms of CPU a message on top of the handler (the token-expiry
consumer of the time, whose handler was one Redis call, spent 0.9 ms a payment) and 1.7 % of a core
each while idle.

Groups: a worker that is behind has every slot taken, and a message admitted as soon as
one slot frees starts alone. Its statements then share nothing (the notifier's
coalesced statements carried 1.6 notifications each). Admitted half a worker's slots at
a time, the messages of a group start together and share them (9.5 each).
"""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from functools import partial
from typing import TypeVar

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.abc import ConsumerRebalanceListener
from aiokafka.errors import KafkaError
from prometheus_client import start_http_server

from services.common.consumer_settings import ConsumerSettings
from services.common.kafka import IdempotenceRefused, ensure_topics, start_producer, system_topics
from services.common.logging import READY
from workers.common.consumer import EventConsumer, RawMessage
from workers.common.event_loop import run_worker_loop
from workers.common.ordered_concurrency import OrderedConcurrency

log = logging.getLogger("workers.kafka")
T = TypeVar("T")
ConsumerFactory = Callable[[], AbstractAsyncContextManager[EventConsumer]]

# Messages taken from the broker per poll. A worker holds at most this many beyond the
# CONSUMER_CONCURRENCY in hand, so one that falls behind holds a hundred, not the backlog.
PREFETCH_MESSAGES = 100
# How long the broker may hold a fetch open waiting for new messages. Apache Kafka
# answers a waiting fetch as soon as a message arrives; the embedded broker (Tansu)
# answers only when the wait runs out, so each hop waited half of it on average: with
# 1,500 ms (aiokafka's and faust's default) a message arrived after 414 ms at the
# median, with 100 ms after 25, with 20 after 6. An idle consumer sends 1000 / FETCH_WAIT_MS
# small fetches a second over its open connection; a busy one is answered at once.
FETCH_WAIT_MS = 50
# How long a stopping worker, or one whose partitions move, lets the messages in hand finish.
SHUTDOWN_GRACE_SECONDS = 5.0
# Logged at every assignment: the group is joined and the worker is consuming.
ASSIGNED = "partitions assigned"


def admission_group(concurrency: int) -> int:
    """How many messages of a poll are admitted together (see "Groups" above).

    A message stuck in hand keeps its slot, and a group waits until it fits whole: the
    reading therefore stops after `concurrency - group + 1` to `concurrency` messages.
    """
    return max(1, concurrency // 2)


class ReleasedOffsets:
    """Per partition, the offset after the last message released: what may be committed."""

    def __init__(self) -> None:
        self._next: dict[TopicPartition, int] = {}
        self._committed: dict[TopicPartition, int] = {}

    async def release(self, partition: TopicPartition, offset: int) -> None:
        self._next[partition] = offset + 1

    def uncommitted(self, owned: set[TopicPartition]) -> dict[TopicPartition, int]:
        return {partition: offset for partition, offset in self._next.items()
                if partition in owned and self._committed.get(partition) != offset}

    def committed(self, offsets: dict[TopicPartition, int]) -> None:
        self._committed.update(offsets)

    def forget(self, partitions: set[TopicPartition]) -> None:
        for partition in partitions:
            self._next.pop(partition, None)
            self._committed.pop(partition, None)


class KafkaWorker(ConsumerRebalanceListener):  # type: ignore[misc]  # aiokafka.abc is untyped
    """Feed every message of `topics` to `handler`, `concurrency` at once, and commit behind it."""

    def __init__(self, settings: ConsumerSettings, group: str, topics: Sequence[str],
                 handler: EventConsumer, *, concurrency: int) -> None:
        self._settings = settings
        self._group = group
        self._topics = list(topics)
        self._handler = handler
        self._in_hand = OrderedConcurrency(concurrency)
        self._group_size = admission_group(concurrency)
        self._offsets = ReleasedOffsets()
        self._stopping = asyncio.Event()
        self._kafka: AIOKafkaConsumer | None = None

    def stop(self) -> None:
        self._stopping.set()

    async def run(self) -> None:
        """Consume until stop(); then let the messages in hand finish and commit behind them."""
        kafka = await until_ready("broker", self._start_consumer)
        self._kafka = kafka
        committer = asyncio.create_task(self._commit_every(self._settings.consumer_commit_interval_seconds))
        consuming = asyncio.create_task(self._consume(kafka))
        stopping = asyncio.create_task(self._stopping.wait())
        try:
            # A failure inside the consumer (a bug: handlers park what they cannot handle)
            # ends the worker, to be restarted; a stop ends the fetching, even one that
            # waits for a slot behind messages stuck in an outage.
            await asyncio.wait((consuming, stopping), return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (consuming, stopping, committer):
                task.cancel()
            await asyncio.gather(consuming, stopping, committer, return_exceptions=True)
            # What does not finish in time is read again by whoever resumes.
            await self._in_hand.close(grace=SHUTDOWN_GRACE_SECONDS)
            await self._commit()
            await kafka.stop()
        failure = None if consuming.cancelled() else consuming.exception()
        if failure is not None:
            raise failure

    @property
    def kafka_consumer(self) -> AIOKafkaConsumer | None:
        return self._kafka

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        # Finish what is in hand and commit it, so the next owner starts after it.
        if not await self._in_hand.drain(SHUTDOWN_GRACE_SECONDS):
            log.warning("%s: messages still in hand as partitions move; the next owner repeats them",
                        self._group)
        await self._commit()
        self._offsets.forget(set(revoked))

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        shown = ", ".join(sorted(f"{tp.topic}[{tp.partition}]" for tp in assigned)) or "none"
        log.info("%s %s: %s: %s", self._group, READY, ASSIGNED, shown)

    async def _start_consumer(self) -> AIOKafkaConsumer:
        settings = self._settings
        consumer = AIOKafkaConsumer(
            bootstrap_servers=settings.kafka_bootstrap_servers, group_id=self._group,
            client_id=self._group, enable_auto_commit=False, auto_offset_reset="earliest",
            fetch_max_wait_ms=FETCH_WAIT_MS, max_poll_records=PREFETCH_MESSAGES,
            session_timeout_ms=int(settings.consumer_session_timeout_seconds * 1000),
            rebalance_timeout_ms=int(settings.consumer_rebalance_timeout_seconds * 1000),
            heartbeat_interval_ms=int(min(3.0, settings.consumer_session_timeout_seconds / 3) * 1000),
            request_timeout_ms=settings.kafka_request_timeout_ms,
        )
        try:
            await consumer.start()
            consumer.subscribe(self._topics, listener=self)
        except BaseException:
            await consumer.stop()
            raise
        return consumer

    async def _consume(self, kafka: AIOKafkaConsumer) -> None:
        while True:
            polled = [(partition, record)
                      for partition, records in (await kafka.getmany(timeout_ms=1000)).items()
                      for record in records]
            for start in range(0, len(polled), self._group_size):
                group = polled[start:start + self._group_size]
                await self._in_hand.room_for(len(group))
                for partition, record in group:
                    await self._submit(partition, record)

    async def _submit(self, partition: TopicPartition, record: ConsumerRecord[bytes, bytes]) -> None:
        message = RawMessage(
            record.topic, record.partition, record.offset, record.key, record.value,
            tuple((name, bytes(value or b"")) for name, value in record.headers or ()),
        )
        await self._in_hand.submit(
            lane=partition, key=record.key, work=partial(self._handler.process, message),
            release=partial(self._offsets.release, partition, record.offset),
        )

    async def _commit_every(self, seconds: float) -> None:
        while True:
            await asyncio.sleep(seconds)
            await self._commit()

    async def _commit(self) -> None:
        if self._kafka is None:
            return
        offsets = self._offsets.uncommitted(self._kafka.assignment())
        if not offsets:
            return
        try:
            await self._kafka.commit(offsets)
        except KafkaError as error:
            # The group moved on (a rebalance) or the broker is away: the next commit, or
            # the next owner reading these messages again, makes up for it.
            log.warning("%s: commit failed (%r); trying again later", self._group, error)
            return
        self._offsets.committed(offsets)


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


async def serve(settings: ConsumerSettings, group: str, topics: Sequence[str],
                factory: ConsumerFactory, *, concurrency: int) -> None:
    """Consume until SIGINT or SIGTERM, with the consumer `factory` makes."""
    # Subscribing to a topic that does not exist yet would leave its partitions unassigned.
    await until_ready("broker", lambda: ensure_topics(settings, system_topics()))
    async with factory() as handler:
        worker = KafkaWorker(settings, group, topics, handler, concurrency=concurrency)
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, worker.stop)
        started = time.monotonic()
        await worker.run()
        log.info("%s stopped after %.0f s", group, time.monotonic() - started)


def run_worker(settings: ConsumerSettings, part: str, topics: Sequence[str], factory: ConsumerFactory, *,
               metrics_port: int) -> None:
    """Run a consumer worker in the foreground until SIGINT/SIGTERM; exit 2 on a setting to change."""
    # aiokafka logs every failed reconnect (the workers log outcomes).
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    if metrics_port:
        start_http_server(metrics_port, addr=settings.worker_metrics_host)
    try:
        run_worker_loop(serve(settings, settings.group(part), topics, factory,
                              concurrency=settings.consumer_concurrency))
    except IdempotenceRefused as error:
        log.critical("%s", error)
        raise SystemExit(2) from None
