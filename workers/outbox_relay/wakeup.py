"""Wake the relay at commit: LISTEN on the 'outbox' channel, reconnecting forever."""

from __future__ import annotations

import asyncio
import collections
import contextlib

import asyncpg

from workers.outbox_relay.health import Health, log

CHANNEL = "outbox"
APPLICATION_NAME = "outbox-relay-listener"
DATABASE_ERRORS = (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError)


class Wakeup:
    """A wake-up signal that a waiter cannot miss between checking and waiting.

    A notification wakes one waiting loop, not all of them: every loop woken would claim,
    and a commit would cost RELAY_CONCURRENCY claims where one finds its rows. A
    notification that finds no loop waiting is not lost: a loop that comes back from a
    claim sees the generation moved and claims again at once.
    """

    def __init__(self) -> None:
        self.generation = 0
        self._waiters: collections.deque[asyncio.Future[None]] = collections.deque()

    def notify(self) -> None:
        self._wake(most=1)

    def notify_all(self) -> None:
        self._wake(most=None)

    def _wake(self, most: int | None) -> None:
        self.generation += 1
        woken = 0
        while self._waiters and (most is None or woken < most):
            waiter = self._waiters.popleft()
            if not waiter.done():  # one that timed out is gone already
                waiter.set_result(None)
                woken += 1

    async def wait(self, seen: int, seconds: float) -> None:
        """Return at a notification after generation `seen`, or after `seconds`."""
        if self.generation != seen:
            return
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(waiter, seconds)
        finally:
            if waiter in self._waiters:
                self._waiters.remove(waiter)


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
