"""What the API holds open for its lifetime, built and closed by the lifespan."""

from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncEngine

from services.booking.adapters.concert_index import ConcertIndex
from services.booking.adapters.database import create_engine
from services.booking.adapters.rate_limits import RateLimiter
from services.booking.adapters.seat_locks import SeatLocks
from services.booking.adapters.unit_of_work import PostgresUnitOfWork, unit_of_work
from services.booking.adapters.users import UserRegistry
from services.booking.adapters.waiting_room import WaitingRooms
from services.booking.config import Settings, queue_lifetimes, room_defaults
from services.booking.domain.seat_hold import HoldPolicy
from services.booking.domain.waiting_room import RoomPolicy
from services.booking.entrypoints.api.auth import TokenVerifier
from services.booking.entrypoints.api.system_metrics import SystemView, system_view
from services.common.redis_client import RedisClient, connect_redis
from services.common.tracing import current_trace_id


@dataclass(frozen=True)
class Services:
    settings: Settings
    engine: AsyncEngine
    # The same pool in autocommit: a read of one statement (or of independent ones) costs no
    # BEGIN and ROLLBACK round trips.
    reads: AsyncEngine
    redis: RedisClient
    users: UserRegistry
    tokens: TokenVerifier
    waiting_rooms: WaitingRooms
    room_defaults: RoomPolicy
    concerts: ConcertIndex
    seat_locks: SeatLocks | None
    user_limits: RateLimiter
    address_limits: RateLimiter
    system_view: SystemView
    hold_policy: HoldPolicy

    def unit_of_work(self) -> AbstractAsyncContextManager[PostgresUnitOfWork]:
        """One transaction for this request, its events stamped with the request's trace id."""
        return unit_of_work(self.engine, current_trace_id())


@asynccontextmanager
async def open_services(settings: Settings) -> AsyncIterator[Services]:
    engine = create_engine(settings)
    # One connection carries every request's commands (pipelined): no pool to run dry
    # in a rush, and a command costs a fraction of a pooled connection's round trip.
    redis = connect_redis(str(settings.redis_url), timeout=2, connect_timeout=2)
    system = system_view(settings, engine)
    namespace = settings.queue_namespace
    try:
        yield Services(
            settings=settings, engine=engine, reads=engine.execution_options(isolation_level="AUTOCOMMIT"),
            redis=redis, users=UserRegistry(engine),
            tokens=TokenVerifier.from_settings(settings),
            waiting_rooms=WaitingRooms(redis, queue_lifetimes(settings), namespace),
            room_defaults=room_defaults(settings), concerts=ConcertIndex(engine),
            seat_locks=SeatLocks(redis) if settings.redis_locks_enabled else None,
            user_limits=RateLimiter(redis, f"{namespace}:user", settings.rate_limit_user_per_second),
            address_limits=RateLimiter(redis, f"{namespace}:address", settings.rate_limit_anon_per_second),
            system_view=system,
            hold_policy=HoldPolicy(settings.hold_ttl_seconds, settings.max_holds_per_user),
        )
    finally:
        await system.aclose()
        await redis.aclose()
        await engine.dispose()
