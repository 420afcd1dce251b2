"""Prometheus metrics of the HTTP API."""

from collections.abc import Iterator

from prometheus_client import REGISTRY, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.pool import QueuePool

REQUESTS = Counter(
    "http_requests_total", "HTTP requests answered", ["method", "route", "status"]
)
LATENCY = Histogram(
    "http_request_duration_seconds", "HTTP request latency", ["method", "route"],
    buckets=(0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
ERRORS = Counter("http_errors_total", "HTTP 5xx answers", ["route", "status"])


class PoolCollector(Collector):
    """Reads the use of every live connection pool of this process at scrape time."""

    def __init__(self) -> None:
        self._engines: list[AsyncEngine] = []

    def track(self, engine: AsyncEngine) -> None:
        self._engines.append(engine)

    def forget(self, engine: AsyncEngine) -> None:
        self._engines.remove(engine)

    def collect(self) -> Iterator[GaugeMetricFamily]:
        pools = [e.pool for e in self._engines if isinstance(e.pool, QueuePool)]
        size = GaugeMetricFamily("db_pool_size", "Connections the pools keep")
        size.add_metric([], sum(pool.size() for pool in pools))
        used = GaugeMetricFamily("db_pool_in_use", "Connections checked out")
        used.add_metric([], sum(pool.checkedout() for pool in pools))
        overflow = GaugeMetricFamily("db_pool_overflow", "Connections above the pool size")
        overflow.add_metric([], sum(max(pool.overflow(), 0) for pool in pools))
        yield from (size, used, overflow)


POOLS = PoolCollector()
REGISTRY.register(POOLS)
