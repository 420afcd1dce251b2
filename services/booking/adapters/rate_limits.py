"""Request rate limits shared by every API process: one token bucket per caller in Redis."""

import math
import time
from dataclasses import dataclass
from pathlib import Path

from services.common.redis_client import RedisClient

LUA = Path(__file__).parent / "lua" / "rate_limit.lua"
BURST_FACTOR = 2  # API.md §1: bursts up to twice the rate


@dataclass(frozen=True)
class Refusal:
    retry_after_seconds: int


class RateLimiter:
    """Takes one token per request from the caller's bucket (one atomic step in Redis)."""

    def __init__(self, redis: RedisClient, namespace: str, per_second: int) -> None:
        self._namespace = namespace
        self._rate = per_second
        self._take = redis.register_script(LUA.read_text())

    @property
    def enabled(self) -> bool:
        return self._rate > 0

    async def take(self, who: str) -> Refusal | None:
        """None when `who` may go on, else how long to wait."""
        key = f"ratelimit:{{{self._namespace}:{who}}}"  # each caller's bucket in a slot of its own
        wait_ms = int(await self._take(keys=[key], args=[int(time.time() * 1000), self._rate,
                                                        self._rate * BURST_FACTOR]))
        return None if wait_ms <= 0 else Refusal(max(1, math.ceil(wait_ms / 1000)))
