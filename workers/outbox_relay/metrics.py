"""Prometheus metrics of the outbox relay."""

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram

from services.booking.adapters.outbox import OutboxStats
from workers.outbox_relay.broker_offsets import OffsetGauges

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)


class RelayMetrics:
    """One set of relay metrics in `registry` (a fresh registry per relay in tests)."""

    def __init__(self, registry: CollectorRegistry = REGISTRY) -> None:
        self.published = Counter(
            "outbox_published", "Outbox events acknowledged by the broker.", registry=registry
        )
        self.publish_errors = Counter(
            "outbox_publish_errors",
            "Outbox events whose publish failed; kind=transient is retried, permanent is dead.",
            ["kind"], registry=registry,
        )
        for kind in ("transient", "permanent"):
            self.publish_errors.labels(kind)  # exported as 0 from the start, for alerts
        self.dead_lettered = Counter(
            "outbox_dead_lettered", "Outbox rows marked dead by this relay.", registry=registry
        )
        self.purged = Counter(
            "outbox_purged", "Published outbox rows deleted after the retention.",
            registry=registry,
        )
        self.latency = Histogram(
            "outbox_publish_latency_seconds",
            "From occurred_at (commit) to the broker's acknowledgement, for the oldest event"
            " of each published batch.",
            buckets=LATENCY_BUCKETS, registry=registry,
        )
        self.backlog = Gauge(
            "outbox_backlog", "Unpublished live outbox rows.", registry=registry
        )
        self.oldest_age = Gauge(
            "outbox_oldest_unpublished_age_seconds",
            "Age of the oldest unpublished live outbox row (0 when none).", registry=registry,
        )
        self.dead_rows = Gauge(
            "outbox_dead_rows", "Outbox rows that can never be published, awaiting the DLQ CLI.",
            registry=registry,
        )
        self.broker_up = Gauge(
            "outbox_relay_broker_up", "1 while the relay can publish to the broker.",
            registry=registry,
        )
        self.broker_up.set(1)
        # kafka_consumer_group_lag and dlq_messages, read from the broker by watch_offsets.
        self.broker_offsets = OffsetGauges(registry)

    def observe_stats(self, stats: OutboxStats) -> None:
        self.backlog.set(stats.backlog)
        self.dead_rows.set(stats.dead)
        self.oldest_age.set(stats.oldest_age_seconds)
