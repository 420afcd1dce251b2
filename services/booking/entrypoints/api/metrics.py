"""Prometheus metrics of the HTTP API, correct with one process or several.

With several uvicorn workers (PROMETHEUS_MULTIPROC_DIR set before the workers start),
prometheus_client keeps every value in a file per process and /metrics sums them,
so one scrape of any worker sees the whole API. Pool gauges are therefore set when
connections are checked out and in, rather than read by a collector at scrape time,
which would see only the worker that happens to answer the scrape.
"""

from collections.abc import Callable

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram, multiprocess
from sqlalchemy import event
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
# "livesum": the sum over the worker processes that are alive.
POOL_SIZE = Gauge("db_pool_size", "Connections the pools keep", multiprocess_mode="livesum")
POOL_IN_USE = Gauge("db_pool_in_use", "Connections checked out", multiprocess_mode="livesum")
POOL_OVERFLOW = Gauge(
    "db_pool_overflow", "Connections above the pool size", multiprocess_mode="livesum"
)


class PoolGauges:
    """Keeps the pool gauges equal to the sum over this process's tracked pools.

    Connections in use are counted by the checkout and checkin events themselves (the
    pool's own count still includes a connection while its checkin event runs), with
    one gauge operation per event: they run twice per transaction.
    """

    def __init__(self) -> None:
        self._in_use: dict[QueuePool, int] = {}
        self._listeners: dict[QueuePool, tuple[Callable[..., None], Callable[..., None]]] = {}

    def track(self, engine: AsyncEngine) -> None:
        pool = engine.pool
        if not isinstance(pool, QueuePool):
            return
        self._in_use[pool] = pool.checkedout()
        listeners = (lambda *_: self._count(pool, +1), lambda *_: self._count(pool, -1))
        self._listeners[pool] = listeners
        event.listen(pool, "checkout", listeners[0])
        event.listen(pool, "checkin", listeners[1])
        self._set_all()

    def forget(self, engine: AsyncEngine) -> None:
        pool = engine.pool
        if isinstance(pool, QueuePool) and pool in self._listeners:
            checkout, checkin = self._listeners.pop(pool)
            event.remove(pool, "checkout", checkout)
            event.remove(pool, "checkin", checkin)
            del self._in_use[pool]
            self._set_all()

    def _count(self, pool: QueuePool, step: int) -> None:
        before = self._in_use.get(pool)
        if before is None:
            return
        after = max(before + step, 0)
        self._in_use[pool] = after
        POOL_IN_USE.inc(after - before)
        if max(before, after) > pool.size():  # in or out of the overflow
            POOL_OVERFLOW.inc(max(after - pool.size(), 0) - max(before - pool.size(), 0))

    def _set_all(self) -> None:
        POOL_SIZE.set(sum(pool.size() for pool in self._in_use))
        POOL_IN_USE.set(sum(self._in_use.values()))
        POOL_OVERFLOW.set(sum(max(n - pool.size(), 0) for pool, n in self._in_use.items()))


POOLS = PoolGauges()


def exposition_registry(multiproc_dir: str | None) -> CollectorRegistry:
    """What /metrics exposes: this process's registry, or the sum over all workers."""
    if multiproc_dir is None:
        return REGISTRY
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=multiproc_dir)  # type: ignore[no-untyped-call]
    return registry


def forget_process(multiproc_dir: str | None, pid: int) -> None:
    """Drop a stopping worker's live gauges, so the sums count only workers still running."""
    if multiproc_dir is not None:
        multiprocess.mark_process_dead(pid, multiproc_dir)  # type: ignore[no-untyped-call]
