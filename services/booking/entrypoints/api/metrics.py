"""Prometheus metrics of the HTTP API."""

from collections.abc import Iterator

from prometheus_client import Counter, Histogram
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
    """Reads the connection pool's use at scrape time."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    def collect(self) -> Iterator[GaugeMetricFamily]:
        pool = self._engine.pool
        if not isinstance(pool, QueuePool):
            return
        size = GaugeMetricFamily("db_pool_size", "Connections the pool keeps")
        size.add_metric([], pool.size())
        used = GaugeMetricFamily("db_pool_in_use", "Connections checked out")
        used.add_metric([], pool.checkedout())
        overflow = GaugeMetricFamily("db_pool_overflow", "Connections above the pool size")
        overflow.add_metric([], max(pool.overflow(), 0))
        yield from (size, used, overflow)
