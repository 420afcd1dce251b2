"""Consumer lag and dead-letter counts on the relay's /metrics, refreshed every few seconds.

The reading itself (services/common/broker_offsets.py) is shared with the API's /metrics.
While the broker does not answer both families are removed rather than left at their
last value (outbox_relay_broker_up says why they are gone).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

from prometheus_client import CollectorRegistry
from prometheus_client.core import Metric

from services.common.broker_offsets import BrokerOffsets, Offsets, offset_families
from workers.outbox_relay.health import Health


class OffsetGauges:
    """The last read, as gauges; nothing at all before the first read and while reads fail."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self._offsets: Offsets | None = None
        registry.register(self)

    def show(self, offsets: Offsets | None) -> None:
        # One reference swap: a scrape sees the whole of one read, never half of two.
        self._offsets = offsets

    def describe(self) -> Iterable[Metric]:
        return offset_families(Offsets({}, {}))

    def collect(self) -> Iterable[Metric]:
        return offset_families(self._offsets) if self._offsets is not None else []


async def watch_offsets(
    reader: BrokerOffsets, gauges: OffsetGauges, interval: float, health: Health
) -> None:
    """Refresh `gauges` every `interval` seconds until cancelled; never raises."""
    try:
        while True:
            try:
                offsets = await reader.read()
            except Exception as error:  # broker down or slow: no number beats a stale one
                gauges.show(None)
                await health.failed(error)  # one log line per outage, then backoff
                continue
            health.succeeded()
            gauges.show(offsets)
            await asyncio.sleep(interval)
    finally:
        gauges.show(None)
