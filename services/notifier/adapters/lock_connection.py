"""One pooled connection whose session holds advisory locks, one statement at a time.

A session-level advisory lock lasts as long as the connection that took it. So each life
of the connection is numbered (its generation): a lock records the generation that took
it, and a statement made under that lock runs only while the same life lasts. A
statement that loses the connection (closed, the server shutting down, the protocol
interrupted by a cancel) ends that life and every lock taken in it; the next statement
opens a new one.
"""

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine


class LockLost(Exception):
    """The connection that held the lock was lost, and the lock with it: nothing more is
    written under it (its cause is the outage, so the work is retried)."""


class LockConnection:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._pooled: AsyncConnection | None = None
        self._conn: asyncpg.Connection | None = None
        self._generation = 0
        self._lost: BaseException | None = None
        self._turn = asyncio.Lock()

    @asynccontextmanager
    async def statement(self) -> AsyncIterator[tuple[asyncpg.Connection, int]]:
        """The connection, its turn, and which of its lives it is."""
        async with self._turn:
            conn = await self._connect()
            try:
                yield conn, self._generation
            except BaseException as error:
                if not _connection_survives(conn, error):
                    await self._drop(error)
                raise

    async def run(self, generation: int, method: str, sql: str, *args: Any) -> Any:
        """One statement under a lock that life `generation` took (asyncpg's `method`)."""
        async with self.statement() as (conn, current):
            if current != generation:
                raise self.lost()
            return await getattr(conn, method)(sql, *args)

    def lost(self) -> LockLost:
        """The error of a lock whose life has ended."""
        lost = LockLost("the connection holding the lock was lost")
        lost.__cause__ = self._lost
        return lost

    async def close(self) -> None:
        """Give the connection back to the pool (its locks were let go)."""
        async with self._turn:
            if self._pooled is not None:
                await self._pooled.close()
            self._pooled = self._conn = None

    async def _connect(self) -> asyncpg.Connection:
        if self._conn is None:
            pooled = await self._engine.connect()
            raw = await pooled.get_raw_connection()
            self._pooled, self._conn = pooled, raw.driver_connection
        return self._conn

    async def _drop(self, error: BaseException) -> None:
        pooled, conn = self._pooled, self._conn
        self._pooled = self._conn = None
        self._generation += 1
        self._lost = error if isinstance(error, Exception) else ConnectionAbortedError(repr(error))
        if conn is not None:
            conn.terminate()
        if pooled is not None:
            await pooled.invalidate()  # not back into the pool
            await pooled.close()


def _connection_survives(conn: asyncpg.Connection, error: BaseException) -> bool:
    """A statement the server refused leaves the session as it was; anything else (the
    connection closed, the protocol interrupted by a cancel) may not have."""
    shutdown = (asyncpg.AdminShutdownError, asyncpg.CrashShutdownError, asyncpg.CannotConnectNowError)
    refused = isinstance(error, asyncpg.PostgresError) and not isinstance(error, shutdown)
    return refused and not conn.is_closed()
