"""Publish this process's circuit breaker states for the API's /metrics.

The API cannot see a worker's breakers, so each worker process writes their states to
PostgreSQL (services/common/breaker_states.py) on every transition and every heartbeat.
A provider call never waits for that: a transition only wakes the publisher task, which
writes the latest states of all breakers at once. A write that fails (the database is
down or slow) is logged once per outage and retried at the next transition or heartbeat;
nothing here can fail a provider call or stop the worker.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence

from sqlalchemy.ext.asyncio import AsyncEngine

from services.common import breaker_states
from services.common.breaker import AsyncCircuitBreaker
from services.common.breaker_states import HEARTBEAT_SECONDS, BreakerReport

log = logging.getLogger(__name__)

WRITE_TIMEOUT_SECONDS = 2.0


def instance_name() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


class BreakerStatePublisher:
    def __init__(
        self,
        engine: AsyncEngine,
        breakers: Sequence[AsyncCircuitBreaker],
        *,
        instance: str | None = None,
        heartbeat: float = HEARTBEAT_SECONDS,
        write_timeout: float = WRITE_TIMEOUT_SECONDS,
    ) -> None:
        self.instance = instance or instance_name()
        self._engine = engine
        self._breakers = list(breakers)
        self._heartbeat = heartbeat
        self._write_timeout = write_timeout
        self._changed = asyncio.Event()
        self._failing = False
        for breaker in self._breakers:
            # Only a wake-up: the write runs later, in this task, once pybreaker has
            # stored the new state.
            breaker.watch(lambda _: self._changed.set())

    async def run(self) -> None:
        """Write on every change and heartbeat until cancelled; never raises otherwise."""
        await self._attempt(self._prune_and_publish)
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._heartbeat):
                    await self._changed.wait()
            # Cleared before the write, which reads the states: a change during it writes again.
            self._changed.clear()
            await self._attempt(self._publish)

    async def forget(self) -> None:
        """Remove this instance's rows (best effort): a stopped process has no breakers."""
        await self._attempt(self._forget)

    def _reports(self) -> list[BreakerReport]:
        return [BreakerReport(b.provider, int(b.state), b.changed_at) for b in self._breakers]

    async def _publish(self) -> None:
        async with self._engine.begin() as conn:
            await breaker_states.publish(conn, self.instance, self._reports())

    async def _prune_and_publish(self) -> None:
        async with self._engine.begin() as conn:
            await breaker_states.prune(conn)
            await breaker_states.publish(conn, self.instance, self._reports())

    async def _forget(self) -> None:
        async with self._engine.begin() as conn:
            await breaker_states.forget(conn, self.instance, [b.provider for b in self._breakers])

    async def _attempt(self, write: Callable[[], Awaitable[None]]) -> None:
        try:
            async with asyncio.timeout(self._write_timeout):
                await write()
        except Exception as error:  # the database is away: the next heartbeat tries again
            if not self._failing:
                log.warning("breaker states not published (%s: %s); retrying every %g s",
                            type(error).__name__, error, self._heartbeat)
            self._failing = True
            return
        if self._failing:
            log.info("breaker states published again")
        self._failing = False


@contextlib.asynccontextmanager
async def publishing_breaker_states(
    engine: AsyncEngine,
    breakers: Sequence[AsyncCircuitBreaker],
    *,
    instance: str | None = None,
    heartbeat: float = HEARTBEAT_SECONDS,
) -> AsyncIterator[BreakerStatePublisher]:
    """Publish `breakers`' states while the block runs; forget them when it ends."""
    publisher = BreakerStatePublisher(engine, breakers, instance=instance, heartbeat=heartbeat)
    task = asyncio.create_task(publisher.run(), name="breaker-states")
    try:
        yield publisher
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await publisher.forget()
