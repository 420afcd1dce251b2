"""Prometheus series fed from process memory, written to their shared values once a second.

With several API workers, prometheus_client keeps every value in a memory-mapped file and
each write takes a lock and checks the process id: on the position poll, the request's
counter and histogram cost 8 % of the API's CPU (py-spy). Here an observation is a few
list operations in this process; `flush` adds what accumulated to the real series. It
runs when an observation finds the last flush a second old, before every scrape the
process answers, and from the API's own ticker (so an idle worker's last second is not
held back). A scrape therefore sees the other workers' observations at most a second late.
"""

import asyncio
import logging
import time
from bisect import bisect_left

from prometheus_client import Counter, Histogram

FLUSH_SECONDS = 1.0
log = logging.getLogger(__name__)


class BatchedCounter:
    """One labelled counter series, counted here and added to it on flush."""

    __slots__ = ("_count", "_series")

    def __init__(self, series: Counter) -> None:
        self._series = series
        self._count = 0
        _ALL.append(self)

    def inc(self) -> None:
        self._count += 1

    def flush(self) -> None:
        if self._count:
            count, self._count = self._count, 0
            self._series.inc(count)


class BatchedHistogram:
    """One labelled histogram series, bucketed here and added to it on flush.

    prometheus_client keeps a histogram's buckets uncumulated in `_buckets`, beside `_sum`,
    and `observe` adds one to the first bucket whose bound is at least the value: the same
    bucket `bisect_left` finds, so the flushed series equals one fed observation by
    observation. (Those two attributes are the library's own, unchanged since 0.4.)
    """

    __slots__ = ("_bounds", "_counts", "_series", "_sum")

    def __init__(self, series: Histogram) -> None:
        self._series = series
        self._bounds: list[float] = list(series._upper_bounds)
        self._counts = [0] * len(self._bounds)
        self._sum = 0.0
        _ALL.append(self)

    def observe(self, value: float) -> None:
        self._counts[bisect_left(self._bounds, value)] += 1
        self._sum += value
        if time.monotonic() >= _next_flush[0]:
            flush()

    def flush(self) -> None:
        if not any(self._counts):
            return
        counts, self._counts, total, self._sum = self._counts, [0] * len(self._bounds), self._sum, 0.0
        for bucket, count in zip(self._series._buckets, counts, strict=True):
            if count:
                bucket.inc(count)
        self._series._sum.inc(total)


_ALL: list[BatchedCounter | BatchedHistogram] = []
_next_flush = [0.0]


def flush() -> None:
    """Write every batched series of this process to its Prometheus series now."""
    _next_flush[0] = time.monotonic() + FLUSH_SECONDS
    for series in _ALL:
        series.flush()


async def flush_every_second() -> None:
    """Flush until cancelled, then once more: the ticker of a process that serves scrapes."""
    try:
        while True:
            await asyncio.sleep(FLUSH_SECONDS)
            try:
                flush()
            except Exception:  # metrics must never stop the ticker, nor the app's shutdown
                log.exception("writing the batched metrics failed")
    finally:
        flush()
