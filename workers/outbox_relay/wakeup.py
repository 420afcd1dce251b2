"""Wake the relay at commit: LISTEN on the 'outbox' channel, reconnecting forever."""

from __future__ import annotations

import asyncio
import contextlib

import asyncpg

from workers.outbox_relay.health import Health, log

CHANNEL = "outbox"
APPLICATION_NAME = "outbox-relay-listener"
DATABASE_ERRORS = (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError)


class Wakeup:
    """A wake-up signal that a waiter cannot miss between checking and waiting."""

    def __init__(self) -> None:
        self.generation = 0
        self._event = asyncio.Event()

    def notify(self) -> None:
        self.generation += 1
        self._event.set()
        self._event = asyncio.Event()

    async def wait(self, seen: int, seconds: float) -> None:
        """Return at the first notification after generation `seen`, or after `seconds`."""
        if self.generation != seen:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._event.wait(), seconds)


class OutboxListener:
    def __init__(self, dsn: str, wakeup: Wakeup, health: Health, keepalive: float) -> None:
        self._dsn = dsn
        self._wakeup = wakeup
        self._health = health
        self._keepalive = keepalive

    async def run(self) -> None:
        # Never gives up: while it is down the relay still polls, only slower.
        while True:
            try:
                await self._listen()
            except DATABASE_ERRORS as error:
                await self._health.failed(error)
            except Exception as error:
                log.exception("LISTEN connection failed unexpectedly")
                await self._health.failed(error)

    async def _listen(self) -> None:
        connection = await asyncpg.connect(
            self._dsn, timeout=10, server_settings={"application_name": APPLICATION_NAME}
        )
        lost = asyncio.Event()
        try:
            connection.add_termination_listener(lambda _: lost.set())
            await connection.add_listener(CHANNEL, lambda *_: self._wakeup.notify())
            self._health.succeeded()
            # Commits made while nobody listened sent their NOTIFY into the void.
            self._wakeup.notify()
            await self._watch(connection, lost)
        finally:
            connection.terminate()

    async def _watch(self, connection: asyncpg.Connection, lost: asyncio.Event) -> None:
        # A dead peer (server restarted, network cut) is not always reported at
        # once; a periodic query turns a silent loss into an error.
        while not lost.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(lost.wait(), self._keepalive)
            if not lost.is_set():
                await connection.fetchval("SELECT 1", timeout=5)
        raise ConnectionError("the LISTEN connection was closed")
