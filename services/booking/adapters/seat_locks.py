"""Per-seat Redis locks that turn away a crowd early; the database still decides."""

import secrets
from pathlib import Path

from services.booking.adapters.metrics import SEAT_LOCK_ACQUIRED, SEAT_LOCK_CONTENDED, RedisTimer
from services.common.redis_client import RedisClient

RELEASE = Path(__file__).parent / "lua" / "release_lock.lua"
TIMED_LOCK = RedisTimer("seat_lock_acquire")
TIMED_UNLOCK = RedisTimer("seat_lock_release")


class SeatLocks:
    def __init__(self, redis: RedisClient, lease_ms: int = 10_000) -> None:
        self._redis = redis
        self._lease_ms = lease_ms
        self._release = redis.register_script(RELEASE.read_text())

    @staticmethod
    def key(schedule_id: object, seat_no: int) -> str:
        return f"seatlock:{{{schedule_id}}}:{seat_no}"

    async def acquire(self, key: str) -> str | None:
        owner = secrets.token_hex(8)
        acquired = await TIMED_LOCK.time(self._redis.execute("SET", key, owner, "NX", "PX", self._lease_ms))
        (SEAT_LOCK_ACQUIRED if acquired else SEAT_LOCK_CONTENDED).inc()
        return owner if acquired else None

    async def release(self, key: str, owner: str) -> None:
        await TIMED_UNLOCK.time(self._release(keys=[key], args=[owner]))
