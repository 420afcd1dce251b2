"""The PostgreSQL engine of the booking API and the errors it translates."""

from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import AsyncAdaptedQueuePool, ConnectionPoolEntry

from services.booking.adapters.metrics import waiting_for_connection
from services.booking.config import Settings

# A request that waits this long for a row lock is answered rather than left hanging.
LOCK_TIMEOUT_MS = 5000


class MeasuredPool(AsyncAdaptedQueuePool):
    """The default pool of an async engine, counting who waits for a connection and how long.

    `_do_get` is where every checkout takes a pooled connection, opens one, or waits.
    """

    # SQLAlchemy names a pool's logger after its class: keep the name its own pools log
    # under (quiet by default), not one under `services`, which logs at INFO.
    _sqla_logger_namespace = "sqlalchemy.pool.impl.AsyncAdaptedQueuePool"

    def _do_get(self) -> ConnectionPoolEntry:
        with waiting_for_connection():
            return super()._do_get()


def create_engine(settings: Settings) -> AsyncEngine:
    return create_async_engine(
        settings.database_dsn,
        poolclass=MeasuredPool,
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_pool_overflow,
        pool_pre_ping=False,
        pool_timeout=10,
        connect_args={
            "server_settings": {
                "lock_timeout": str(LOCK_TIMEOUT_MS),
                "application_name": "booking-api",
            },
            "timeout": 5,
        },
    )
