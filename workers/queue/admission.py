"""Queue admission and expiry: the background half of the waiting room and of seat holds."""

import asyncio
import logging
from datetime import UTC, datetime

from redis.exceptions import RedisError
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from services.booking.adapters import idempotency_store, reservations
from services.booking.adapters.waiting_room import WaitingRoom
from services.booking.config import Settings
from services.common.redis_multiplex import MultiplexedRedis
from workers.queue import metrics

log = logging.getLogger("booking.queue")

ADMIT_EVERY_SECONDS = 0.1
SWEEP_EVERY_SECONDS = 1.0
PURGE_EVERY_SECONDS = 3600.0
IDEMPOTENCY_RETENTION_HOURS = 48


async def admit_forever(room: WaitingRoom, settings: Settings) -> None:
    """Fill the active set up to QUEUE_MAX_ACTIVE as tokens finish, at the capped rate."""
    healthy = True
    while True:
        try:
            step = await room.admit(
                settings.queue_max_active, settings.queue_active_ttl_seconds,
                settings.queue_wait_grace_seconds,
            )
            metrics.observe(step, settings.queue_max_active)
            if step.admitted or step.expired or step.abandoned:
                log.debug("admission %s", step)
            if not healthy:
                log.info("admission resumed: Redis answers again")
            healthy = True
        except RedisError as error:
            if healthy:
                log.warning("admission paused: Redis unavailable (%s)", error)
            healthy = False
        await asyncio.sleep(ADMIT_EVERY_SECONDS)


async def sweep_forever(engine: AsyncEngine) -> None:
    """Record expired holds as EXPIRED and free their seats (readers already treat them so)."""
    elapsed_since_purge = PURGE_EVERY_SECONDS
    while True:
        try:
            async with engine.begin() as conn:
                await reservations.sweep_expired(conn, datetime.now(UTC))
            if elapsed_since_purge >= PURGE_EVERY_SECONDS:
                async with engine.begin() as conn:
                    await idempotency_store.purge(conn, IDEMPOTENCY_RETENTION_HOURS)
                elapsed_since_purge = 0.0
        except (DBAPIError, OSError) as error:
            log.warning("hold sweep skipped: database unavailable (%s)", error)
        await asyncio.sleep(SWEEP_EVERY_SECONDS)
        elapsed_since_purge += SWEEP_EVERY_SECONDS


async def run(settings: Settings, engine: AsyncEngine, redis: MultiplexedRedis) -> None:
    room = WaitingRoom(redis, settings.queue_admit_per_second, settings.queue_namespace)
    async with asyncio.TaskGroup() as group:
        group.create_task(admit_forever(room, settings))
        group.create_task(sweep_forever(engine))
