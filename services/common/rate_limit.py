"""A client-side rate limit per provider: an asyncio token bucket."""

import asyncio
import time
from collections.abc import Callable


class TokenBucket:
    """Admit at most `rate` requests a second on average, with bursts up to `burst`.

    Implemented as a virtual schedule (GCRA): each caller reserves the next free
    slot before it sleeps, so waiters are served in arrival order without a lock,
    and the bucket needs no event loop until someone actually has to wait.
    A cancelled waiter keeps its slot, which errs on the side of sending less.
    """

    def __init__(self, rate: float, burst: int = 1, *, clock: Callable[[], float] = time.monotonic) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("rate must be > 0 and burst >= 1")
        self._interval = 1.0 / rate
        self._tolerance = (burst - 1) * self._interval
        self._clock = clock
        self._theoretical_arrival = float("-inf")

    def reserve(self) -> float:
        """Take the next slot and return how many seconds to wait for it."""
        now = self._clock()
        arrival = max(self._theoretical_arrival, now)
        self._theoretical_arrival = arrival + self._interval
        return max(0.0, arrival - self._tolerance - now)

    async def acquire(self) -> None:
        """Wait until this caller may send one request."""
        delay = self.reserve()
        if delay > 0:
            await asyncio.sleep(delay)
