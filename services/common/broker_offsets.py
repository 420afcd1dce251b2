"""Consumer lag and dead-letter counts, read from the broker's offsets.

Read from the broker, not reported by the consumers: the numbers stay right while a
consumer is down, which is when they matter. The relay serves them on its /metrics
(refreshed every few seconds) and so does the API (at scrape time, cached), as

    kafka_consumer_group_lag{group, topic}  end offset - committed offset, summed over partitions
    dlq_messages{topic}                     end offset - log start offset of each `<topic>.dlq`

and while the broker does not answer both are left out rather than shown at their
last value.

Three facts of the embedded Tansu broker (0.6) shape the requests:
- ListOffsets(latest) answers the last record batch's base offset + 1, short by the rest
  of that batch (the relay sends one batch per partition), while a Fetch response's high
  watermark is right: the end offset is read from a Fetch at the listed end, which on
  Kafka returns no records and on Tansu at most that last batch.
- OffsetFetch with null topics ("every committed offset of the group") is answered
  without the topics array, which aiokafka cannot decode: partitions are always named.
- A Metadata request that names a topic creates it: only listed topics are asked about.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from prometheus_client.core import GaugeMetricFamily, Metric

from services.common import topics

# Topics each consumer worker reads, by part: its group id is "<CONSUMER_GROUP_PREFIX>-<part>".
CONSUMED: dict[str, tuple[str, ...]] = {
    "ticket-saga": (topics.PAYMENTS,),
    "notifier": (topics.NOTIFICATIONS,),
}
DLQ_SUFFIX = topics.dead_letter_topic("")


def consumer_groups(prefix: str) -> dict[str, tuple[str, ...]]:
    """Group id -> the topics it consumes, for the workers' CONSUMER_GROUP_PREFIX."""
    return {f"{prefix}-{part}": consumed for part, consumed in CONSUMED.items()}


def partition_lag(end: int, committed: int, start: int) -> int:
    """Messages a group has still to read in one partition.

    Without a commit (-1), or with one below the log start (retention removed those
    messages), the consumers begin at the log start: they reset to "earliest".
    """
    return max(end - max(committed, start), 0)


@dataclass(frozen=True)
class Offsets:
    lag: dict[tuple[str, str], int]  # (group, topic) -> messages not yet consumed
    dlq: dict[str, int]  # dead-letter topic -> messages held


class BrokerOffsets:
    """Reads the offsets over connections of its own, opened and closed for each read.

    Fresh clients each time: their bootstrap lists every topic, so offsets are only
    asked for partitions the broker has, and a broker that restarted in between
    leaves no stale client state behind.
    """

    def __init__(
        self, bootstrap_servers: str, groups: Mapping[str, Sequence[str]], timeout: float,
        client_id: str = "booking-offsets",
    ) -> None:
        self._servers = bootstrap_servers
        self._groups = groups
        self._timeout = timeout
        self._client_id = client_id

    async def read(self) -> Offsets:
        """Lag and DLQ sizes now; an error (TimeoutError after `timeout`) if the broker fails."""
        options = {"bootstrap_servers": self._servers, "client_id": self._client_id,
                   "request_timeout_ms": int(self._timeout * 1000)}
        # No group: it commits nothing. A short fetch wait: Kafka answers a fetch at the
        # end of a partition once this passes.
        consumer = AIOKafkaConsumer(group_id=None, enable_auto_commit=False,
                                    fetch_max_wait_ms=100, **options)
        admin = AIOKafkaAdminClient(**options)
        try:
            async with asyncio.timeout(self._timeout):
                await consumer.start()
                await admin.start()
                return await self._read(consumer, admin)
        finally:
            await asyncio.gather(consumer.stop(), admin.close(), return_exceptions=True)

    async def _read(self, consumer: AIOKafkaConsumer, admin: AIOKafkaAdminClient) -> Offsets:
        # The topics the bootstrap listed, never named ones: naming one makes Tansu create it.
        existing = {topic for topic in await consumer.topics()
                    if consumer.partitions_for_topic(topic)}
        consumed = {topic for group in self._groups.values() for topic in group} & existing
        dead = {topic for topic in existing if topic.endswith(DLQ_SUFFIX)}
        partitions = [
            TopicPartition(topic, partition)
            for topic in sorted(consumed | dead)
            for partition in sorted(consumer.partitions_for_topic(topic))
        ]
        if not partitions:
            return Offsets({}, {})
        ends = await log_end_offsets(consumer, partitions)
        starts = await consumer.beginning_offsets(partitions)
        lag: dict[tuple[str, str], int] = {}
        for group, group_topics in self._groups.items():
            named = [tp for tp in partitions if tp.topic in group_topics]
            if not named:
                continue
            committed = await admin.list_consumer_group_offsets(group, partitions=named)
            for tp in named:
                offset = committed[tp].offset if tp in committed else -1
                lag[group, tp.topic] = lag.get((group, tp.topic), 0) + partition_lag(
                    ends[tp], offset, starts[tp])
        held = dict.fromkeys(sorted(dead), 0)
        for tp in partitions:
            if tp.topic in dead:
                held[tp.topic] += ends[tp] - starts[tp]
        return Offsets(lag, held)


async def log_end_offsets(
    consumer: AIOKafkaConsumer, partitions: Sequence[TopicPartition]
) -> dict[TopicPartition, int]:
    """Where each partition's log ends: one past its last record, on Kafka and on Tansu.

    `AIOKafkaConsumer.end_offsets` alone misses the tail of Tansu's last record batch
    (module docstring). Leaves `consumer` assigned to `partitions`, positions undefined.
    """
    listed = await consumer.end_offsets(list(partitions))
    consumer.assign(list(listed))
    for tp, offset in listed.items():
        consumer.seek(tp, offset)
    while any(consumer.highwater(tp) is None for tp in listed):
        await consumer.getmany(timeout_ms=50)  # records (Tansu's last batch) are dropped
    return {tp: max(consumer.highwater(tp), offset) for tp, offset in listed.items()}


def offset_families(offsets: Offsets) -> list[Metric]:
    """`offsets` as the kafka_consumer_group_lag and dlq_messages gauge families."""
    lag = GaugeMetricFamily(
        "kafka_consumer_group_lag",
        "Messages a consumer group has not consumed yet: end offset minus committed offset,"
        " summed over the topic's partitions (read from the broker).",
        labels=["group", "topic"],
    )
    for (group, topic), behind in sorted(offsets.lag.items()):
        lag.add_metric([group, topic], behind)
    dlq = GaugeMetricFamily(
        "dlq_messages",
        "Messages held in a dead-letter topic: end offset minus log start offset, summed over"
        " partitions; replayed letters stay until the topic's retention removes them.",
        labels=["topic"],
    )
    for topic, held in sorted(offsets.dlq.items()):
        dlq.add_metric([topic], held)
    return [lag, dlq]
