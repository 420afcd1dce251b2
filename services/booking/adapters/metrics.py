"""Prometheus metrics of the booking adapters: waits for a database connection, Redis
round trips and seat-lock contention.

Series are bound to their labels once, here: a request pays one observation per wait,
not a label lookup; Redis round trips are batched in memory (common/batched_metrics.py).
Gauges sum over the API's worker processes ("livesum") when PROMETHEUS_MULTIPROC_DIR is
set (see entrypoints/api/metrics.py).
"""

import time
from collections.abc import Awaitable, Iterator
from contextlib import contextmanager
from typing import TypeVar

from prometheus_client import Counter, Gauge, Histogram

from services.common.batched_metrics import BatchedHistogram

# Waits from sub-millisecond (an idle connection) to the pool's 10 s timeout.
WAIT_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)

DB_POOL_WAITING = Gauge(
    "db_pool_waiting", "Requests waiting for a database connection", multiprocess_mode="livesum"
)
DB_POOL_WAIT = Histogram(
    "db_pool_wait_seconds", "Time to get a connection from the pool", buckets=WAIT_BUCKETS
)
REDIS_DURATION = Histogram(
    "redis_operation_duration_seconds", "Round trip of one Redis operation (a command or a script)",
    ["operation"], buckets=WAIT_BUCKETS,
)
SEAT_LOCKS = Counter(
    "seat_lock_attempts", "Seat-lock attempts: acquired, or contended (someone else holds it)",
    ["outcome"],
)
SEAT_LOCK_ACQUIRED = SEAT_LOCKS.labels("acquired")
SEAT_LOCK_CONTENDED = SEAT_LOCKS.labels("contended")
T = TypeVar("T")


@contextmanager
def waiting_for_connection() -> Iterator[None]:
    DB_POOL_WAITING.inc()
    started = time.perf_counter()
    try:
        yield
    finally:
        DB_POOL_WAIT.observe(time.perf_counter() - started)
        DB_POOL_WAITING.dec()


class RedisTimer:
    """Times one kind of Redis operation into redis_operation_duration_seconds."""

    def __init__(self, operation: str) -> None:
        self.observe = BatchedHistogram(REDIS_DURATION.labels(operation)).observe

    async def time(self, operation: Awaitable[T]) -> T:
        """The operation's result, its round trip observed (a plain await: no context manager
        on a path every queue request takes)."""
        started = time.perf_counter()
        try:
            return await operation
        finally:
            self.observe(time.perf_counter() - started)
