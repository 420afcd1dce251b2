"""What the API holds open for its lifetime, built and closed by the lifespan."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine

from services.booking.adapters.database import create_engine
from services.booking.adapters.users import UserRegistry
from services.booking.adapters.waiting_room import SeatLocks, WaitingRoom
from services.booking.config import Settings
from services.booking.entrypoints.api.auth import TokenVerifier
from services.booking.entrypoints.api.system_metrics import SystemView, system_view

REDIS_MAX_CONNECTIONS = 5_000


@dataclass(frozen=True)
class Services:
    settings: Settings
    engine: AsyncEngine
    redis: Redis
    users: UserRegistry
    tokens: TokenVerifier
    waiting_room: WaitingRoom
    seat_locks: SeatLocks | None
    system_view: SystemView


@asynccontextmanager
async def open_services(settings: Settings) -> AsyncIterator[Services]:
    engine = create_engine(settings)
    # Room for a connection per request in flight: past the old cap of 200, redis-py
    # refused with "Too many connections", a 503 in every ticket rush. A blocking pool
    # fixed that too but cost 4 % of a simple request's CPU (asyncio.Condition per
    # command); Redis itself accepts 10,000 clients.
    redis = Redis.from_url(
        str(settings.redis_url), decode_responses=True, socket_timeout=2,
        socket_connect_timeout=2, max_connections=REDIS_MAX_CONNECTIONS,
    )
    system = system_view(settings, engine)
    try:
        yield Services(
            settings=settings, engine=engine, redis=redis, users=UserRegistry(engine),
            tokens=TokenVerifier(settings.auth_jwt_secret),
            waiting_room=WaitingRoom(redis, settings.queue_admit_per_second, settings.queue_namespace),
            seat_locks=SeatLocks(redis) if settings.redis_locks_enabled else None,
            system_view=system,
        )
    finally:
        await system.aclose()
        await redis.aclose()
        await engine.dispose()
