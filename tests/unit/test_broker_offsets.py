"""Lag arithmetic, the gauges the relay serves, and the groups it watches."""

from __future__ import annotations

import importlib
import inspect
import re

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from services.common import topics
from services.common.broker_offsets import Offsets, consumer_groups, partition_lag
from services.common.consumer_settings import ConsumerSettings
from workers.outbox_relay.broker_offsets import OffsetGauges

pytestmark = pytest.mark.unit

WORKERS = ("workers.saga.__main__", "workers.notifier.__main__")


@pytest.mark.parametrize(("end", "committed", "start", "lag"), [
    (10, 7, 0, 3),    # committed: what is left after it
    (10, -1, 0, 10),  # never committed: the group starts at the beginning
    (10, -1, 4, 6),   # ... which retention may have moved
    (10, 2, 4, 6),    # committed below the log start: resets to the start
    (10, 10, 0, 0),   # caught up
    (3, 5, 0, 0),     # a log that was emptied (a memory broker restarted) is not negative
])
def test_partition_lag(end: int, committed: int, start: int, lag: int) -> None:
    assert partition_lag(end, committed, start) == lag


def test_gauges_show_the_last_read_and_nothing_without_one() -> None:
    registry = CollectorRegistry()
    gauges = OffsetGauges(registry)
    assert "kafka_consumer_group_lag{" not in generate_latest(registry).decode()

    gauges.show(Offsets({("booking-notifier", topics.NOTIFICATIONS): 7},
                        {"booking.notifications.dlq": 2, "booking.payments.dlq": 0}))
    assert registry.get_sample_value(
        "kafka_consumer_group_lag", {"group": "booking-notifier", "topic": topics.NOTIFICATIONS}) == 7
    assert registry.get_sample_value("dlq_messages", {"topic": "booking.notifications.dlq"}) == 2
    assert registry.get_sample_value("dlq_messages", {"topic": "booking.payments.dlq"}) == 0

    gauges.show(None)  # the broker stopped answering
    text = generate_latest(registry).decode()
    assert "kafka_consumer_group_lag{" not in text and "dlq_messages{" not in text


def test_the_relay_watches_the_groups_and_topics_the_workers_consume() -> None:
    workers: dict[str, tuple[str, ...]] = {}
    for name in WORKERS:
        module = importlib.import_module(name)
        group = ConsumerSettings(kafka_bootstrap_servers="k:9092", consumer_group_prefix="p").group(
            module.PART)
        source = inspect.getsource(module)
        assert re.search(r"run_consumer_part\(__doc__, Settings, PART, TOPICS,", source), name
        workers[group] = tuple(module.TOPICS)
    assert consumer_groups("p") == workers
