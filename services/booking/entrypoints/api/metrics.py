"""Prometheus metrics of the HTTP API, correct with one process or several.

With several server workers (PROMETHEUS_MULTIPROC_DIR set before the workers start),
prometheus_client keeps every value in a file per process and /metrics sums them,
so one scrape of any worker sees the whole API. Pool gauges are therefore set when
connections are checked out and in, rather than read by a collector at scrape time,
which would see only the worker that happens to answer the scrape. The system view
(system_metrics.py: outbox, lag, DLQ, breakers) is the opposite case: the same for every
worker, so it is read at scrape time by the one that answers, and never summed.
"""

import os
from collections.abc import Callable, Iterable, Sequence
from functools import partial
from pathlib import Path

from prometheus_client import (
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    multiprocess,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.pool import QueuePool

from services.common.batched_metrics import BatchedCounter, BatchedHistogram

REQUESTS = Counter(
    "http_requests_total", "HTTP requests answered", ["method", "route", "status"]
)
LATENCY = Histogram(
    "http_request_duration_seconds", "HTTP request latency", ["method", "route"],
    buckets=(0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
ERRORS = Counter("http_errors_total", "HTTP 5xx answers", ["route", "status"])


METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class _Series:
    """The batched series one (method, route, status) feeds."""

    __slots__ = ("count", "error", "time")

    def __init__(self, method: str, route: str, status: int) -> None:
        self.count = BatchedCounter(REQUESTS.labels(method, route, str(status)))
        self.time = BatchedHistogram(LATENCY.labels(method, route))
        self.error = BatchedCounter(ERRORS.labels(route, str(status))) if status >= 500 else None


class RequestMetrics:
    """Counts and times answered requests, in process memory (services/common/batched_metrics).

    `labels()` looks a series up under a lock on every call; the series of a (method,
    route, status) never change, so they are kept here after their first use.
    """

    def __init__(self) -> None:
        self._series: dict[tuple[str, str, int], _Series] = {}

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        if method not in METHODS:  # a client may send any method: the series must stay bounded
            method = "OTHER"
        series = self._series.get((method, route, status))
        if series is None:
            series = self._series[(method, route, status)] = _Series(method, route, status)
        series.count.inc()
        if series.error is not None:
            series.error.inc()
        series.time.observe(seconds)


REQUEST_METRICS = RequestMetrics()
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


class _Read:
    """Families read beforehand (the system view is read with awaits, a collector cannot)."""

    def __init__(self, families: Sequence[Metric]) -> None:
        self._families = families

    def collect(self) -> Iterable[Metric]:
        return self._families


class _Without:
    """`collector`'s families but the named ones, which only the system view may supply.

    (A process that imported a worker module, as tests do, has its own gauges of those names.)
    """

    def __init__(self, collector: Collector, names: frozenset[str]) -> None:
        self._collector = collector
        self._names = names

    def collect(self) -> Iterable[Metric]:
        return [family for family in self._collector.collect() if family.name not in self._names]


class ApiProcesses:
    """process_* of the whole API when the server runs workers: the supervisor and its children.

    Memory and CPU are summed over them (a leak in any worker shows), the start time is
    the supervisor's (the deployable restarted). Without this, the multiprocess exposition
    has no process_* at all, and the memory and restart alerts never see the API.
    """

    def __init__(self, supervisor: Callable[[], int] = os.getppid) -> None:
        self._supervisor = supervisor

    def collect(self) -> Iterable[Metric]:
        supervisor = self._supervisor()
        values: dict[str, float] = {}
        for pid in (supervisor, *_children(supervisor)):
            for family in ProcessCollector(pid=partial(int, pid), registry=None).collect():
                for sample in family.samples:
                    if sample.name == "process_start_time_seconds":
                        values.setdefault(sample.name, sample.value)  # the supervisor's
                    else:
                        values[sample.name] = values.get(sample.name, 0.0) + sample.value
        if "process_resident_memory_bytes" not in values:
            return []  # no /proc here
        return [
            GaugeMetricFamily("process_resident_memory_bytes", "Resident memory of the API's processes",
                              value=values["process_resident_memory_bytes"]),
            GaugeMetricFamily("process_start_time_seconds", "Start of the API's supervisor process",
                              value=values["process_start_time_seconds"]),
            CounterMetricFamily("process_cpu_seconds", "CPU time of the API's live processes",
                                value=values.get("process_cpu_seconds_total", 0.0)),
            GaugeMetricFamily("process_open_fds", "Open file descriptors of the API's processes",
                              value=values.get("process_open_fds", 0.0)),
        ]


def _children(pid: int) -> list[int]:
    try:
        return [int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def exposition_registry(
    multiproc_dir: str | None, system: Sequence[Metric] = (), replaces: frozenset[str] = frozenset()
) -> CollectorRegistry:
    """What /metrics exposes: this process's registry, or the sum over all workers, with the
    system view (system_metrics.py) read for this scrape in place of the `replaces` families."""
    process: Collector = REGISTRY
    if multiproc_dir is not None:
        process = multiprocess.MultiProcessCollector(None, path=multiproc_dir)  # type: ignore[no-untyped-call]
    registry = CollectorRegistry()
    registry.register(_Without(process, replaces))
    if multiproc_dir is not None:
        registry.register(ApiProcesses())
    registry.register(_Read(system))
    return registry


def forget_process(multiproc_dir: str | None, pid: int) -> None:
    """Drop a stopping worker's live gauges, so the sums count only workers still running."""
    if multiproc_dir is not None:
        multiprocess.mark_process_dead(pid, multiproc_dir)  # type: ignore[no-untyped-call]
