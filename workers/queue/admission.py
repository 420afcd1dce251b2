"""Queue admission and expiry: the background half of the waiting rooms and of seat holds."""

import asyncio
import logging
import random
import secrets
from datetime import UTC, datetime
from uuid import UUID

import asyncpg
from redis.exceptions import RedisError
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from services.booking.adapters import idempotency_store
from services.booking.adapters.unit_of_work import unit_of_work
from services.booking.adapters.waiting_room import WaitingRooms
from services.booking.config import StoreSettings, queue_lifetimes
from services.common.logging import READY
from services.common.redis_client import RedisClient
from workers.queue import metrics

log = logging.getLogger("booking.queue")

ADMIT_EVERY_SECONDS = 0.1
SWEEP_EVERY_SECONDS = 1.0
PURGE_EVERY_SECONDS = 3600.0
IDEMPOTENCY_RETENTION_HOURS = 48


class Shuffles:
    """Seeds of the pre-queue shuffles: unpredictable, or fixed (tests) to be reproducible."""

    def __init__(self, seed: int | None = None) -> None:
        self._random = random.Random(seed) if seed is not None else None  # noqa: S311

    def next(self) -> int:
        return self._random.getrandbits(31) if self._random else secrets.randbits(31)


async def admit_room(rooms: WaitingRooms, concert_id: UUID, seeds: Shuffles) -> None:
    """One atomic step of one room; a room left with nobody waiting leaves the round."""
    step = await rooms.admit(concert_id, seeds.next())
    if step is not None:
        metrics.observe(concert_id, step)
        if step.admitted or step.expired or step.abandoned or step.released:
            log.debug("admission %s %s", concert_id, step)
    if step is None or not step.waiting:
        await rooms.forget_if_empty(concert_id)
        metrics.forget(concert_id)


async def admit_forever(rooms: WaitingRooms, seeds: Shuffles) -> None:
    """Every room with people waiting, each at its own pace, every tick."""
    healthy = True
    while True:
        try:
            waiting = await rooms.rooms_with_waiters()
            await asyncio.gather(*(admit_room(rooms, concert_id, seeds) for concert_id in waiting))
            metrics.ROOMS.set(len(waiting))
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
            async with unit_of_work(engine, None) as uow:
                await uow.reservations.sweep_expired(datetime.now(UTC))
            if elapsed_since_purge >= PURGE_EVERY_SECONDS:
                async with unit_of_work(engine, None) as uow:
                    await idempotency_store.purge(uow.connection, IDEMPOTENCY_RETENTION_HOURS)
                elapsed_since_purge = 0.0
        except (DBAPIError, OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as error:
            log.warning("hold sweep skipped: database unavailable (%s)", error)
        await asyncio.sleep(SWEEP_EVERY_SECONDS)
        elapsed_since_purge += SWEEP_EVERY_SECONDS


async def run(settings: StoreSettings, engine: AsyncEngine, redis: RedisClient,
              shuffle_seed: int | None = None) -> None:
    rooms = WaitingRooms(redis, queue_lifetimes(settings), settings.queue_namespace)
    log.info("queue worker %s: admitting to the waiting rooms, expiring tokens and holds", READY)
    async with asyncio.TaskGroup() as group:
        group.create_task(admit_forever(rooms, Shuffles(shuffle_seed)))
        group.create_task(sweep_forever(engine))
