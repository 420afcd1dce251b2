"""The PostgreSQL engine of the booking API and the errors it translates."""

from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from services.booking.config import Settings

# A request that waits this long for a row lock is answered rather than left hanging.
LOCK_TIMEOUT_MS = 5000


def create_engine(settings: Settings) -> AsyncEngine:
    return create_async_engine(
        settings.database_dsn,
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
