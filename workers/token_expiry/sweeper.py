"""The sweep: take spent tokens not swept, remove them from Redis, mark their rows swept.

Each sweep is one transaction: rows taken with FOR UPDATE SKIP LOCKED (so replicas share
the table without waiting on each other), the tokens removed from Redis at once (the
client is multiplexed), and COMMIT only after Redis answered for every one; any failure
rolls the rows back for a later sweep. Removing a token twice is harmless.
"""

import asyncio
import contextlib
import logging
from collections.abc import Sequence

import asyncpg
from redis.exceptions import RedisError

from services.booking.adapters.queue_token_expiries import QueueTokenExpiries
from services.booking.adapters.waiting_room import WaitingRooms
from services.common.logging import READY
from workers.token_expiry import metrics

SWEEP_INTERVAL_SECONDS = 1.0
SWEEP_BATCH = 500  # a full batch sweeps again at once: a backlog drains without waiting
STARTED = f"token-expiry sweeper {READY}"  # logged once at start, as every part does

DATABASE_ERRORS = (
    OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError,
    asyncpg.InternalClientError,
)

log = logging.getLogger(__name__)


class Sweeper:
    """Sweeps and keeps the metrics; logs an outage once when it starts and once when it ends."""

    def __init__(self, store: QueueTokenExpiries, rooms: WaitingRooms, batch: int = SWEEP_BATCH) -> None:
        self._store, self._rooms, self._batch = store, rooms, batch
        self.outage: str | None = None  # "redis" or "database" while one lasts

    async def _remove(self, tokens: Sequence[str]) -> None:
        await asyncio.gather(*(self._rooms.expire(token) for token in tokens))

    async def sweep(self) -> int:
        """One sweep, then the backlog's gauges (read even when the sweep failed, so a stuck
        sweeper shows); return the tokens removed, 0 after a failure (counted, logged once)."""
        try:
            removed = await self._store.sweep(self._batch, self._remove)
        except RedisError as error:
            self._failed("redis", error)
            removed = None
        except DATABASE_ERRORS as error:
            self._failed("database", error)
            removed = None
        with contextlib.suppress(*DATABASE_ERRORS):
            backlog = await self._store.backlog()
            metrics.WAITING.set(backlog.waiting)
            metrics.OLDEST_AGE.set(backlog.oldest_age_seconds)
        if removed is None:
            return 0
        metrics.REMOVED.inc(removed)
        if self.outage is not None:
            log.info("token sweep works again after a %s outage", self.outage)
            self.outage = None
        return removed

    def _failed(self, reason: str, error: Exception) -> None:
        metrics.FAILURES.labels(reason).inc()
        if self.outage != reason:
            log.warning("token sweep failed (%s unavailable: %r); rows kept, retrying every %.0f s",
                        reason, error, SWEEP_INTERVAL_SECONDS)
            self.outage = reason

    async def run(self, stop: asyncio.Event) -> None:
        """Sweep every SWEEP_INTERVAL_SECONDS, at once again after a full batch, until `stop`."""
        log.info("%s: up to %d spent queue tokens every %.0f s", STARTED, self._batch,
                 SWEEP_INTERVAL_SECONDS)
        while not stop.is_set():
            if await self.sweep() >= self._batch:
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), SWEEP_INTERVAL_SECONDS)
