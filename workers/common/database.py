"""PostgreSQL for the consumer workers: an engine per process and what counts as an outage."""

import asyncpg
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.ext.asyncio import AsyncEngine

from services.common.engines import create_private_engine

UNREACHABLE = (
    OSError, TimeoutError, asyncpg.PostgresConnectionError, asyncpg.CannotConnectNowError,
    asyncpg.InterfaceError,
    # A server shutting down ends its sessions with these (SQLAlchemy reports them as a
    # lost connection; statements run on asyncpg directly see them as they are).
    asyncpg.AdminShutdownError, asyncpg.CrashShutdownError,
    # A session the server ended while it sat idle in the pool: asyncpg reads the FATAL
    # message as the next statement starts and reports a protocol state it cannot enter.
    asyncpg.InternalClientError,
)


def create_worker_engine(
    dsn: str, *, pool_size: int, application_name: str, lock_timeout_ms: int = 10_000
) -> AsyncEngine:
    # No pre-ping: it cost a round trip per checkout, three per saga message and a tenth
    # of the saga's CPU. A connection that died with its server fails its statement as a
    # disconnect, which invalidates the whole pool and counts as an outage: the consumer
    # waits and retries the message on fresh connections.
    return create_private_engine(
        dsn, pool_size=pool_size, max_overflow=0, pool_timeout=30, pool_pre_ping=False,
        connect_args={
            "server_settings": {
                "lock_timeout": str(lock_timeout_ms), "application_name": application_name,
            },
            "timeout": 5,
        },
    )

# asyncpg's errors about a statement's arguments derive from InterfaceError too; raw
# asyncpg calls (the saga, the notifier) raise them unwrapped. Poison, not an outage.
REFUSED_INPUT = (asyncpg.exceptions._base.DataError, asyncpg.exceptions._base.ClientConfigurationError)


def is_database_outage(error: BaseException) -> bool:
    """True when PostgreSQL is unreachable (wait it out), not when a statement failed."""
    if isinstance(error, PoolTimeout) or (isinstance(error, DBAPIError) and error.connection_invalidated):
        return True
    # SQLAlchemy wraps the driver's error, which may wrap the socket's: look down the chain.
    seen: BaseException | None = error
    for _ in range(6):
        if seen is None:
            return False
        if isinstance(seen, REFUSED_INPUT):  # an InterfaceError about the data, not the server
            return False
        if isinstance(seen, UNREACHABLE):
            return True
        seen = getattr(seen, "orig", None) or seen.__cause__
    return False
