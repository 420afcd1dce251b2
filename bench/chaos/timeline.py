"""One clock for customers and faults, and a record of the traffic each fault landed on.

Injecting a fault can take long: the broker's restart waits for every consumer worker to
start again, 30 s and more on a loaded machine. On the wall clock the customers would
all have arrived by then, and the later faults would hit no booking at all. So the
run's clock stops while a fault is being injected: each fault lands after the same
share of customers whatever the machine's speed, and the rest arrive after it.

A fault also waits (briefly) for enough bookings in flight, and records the traffic
it landed on; a fault that landed on fewer tested too little, and the ledger says so.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from typing import TypeVar

T = TypeVar("T")


@dataclass
class Clock:
    """Seconds of the plan: wall time since `started`, less the time spent injecting."""

    started: float = field(default_factory=time.monotonic)
    stopped: float = 0.0
    _since: float | None = field(default=None, init=False)
    _running: asyncio.Event = field(default_factory=asyncio.Event, init=False)

    def __post_init__(self) -> None:
        self._running.set()

    def now(self) -> float:
        return (self._since or time.monotonic()) - self.started - self.stopped

    async def until(self, at: float) -> None:
        while (left := at - self.now()) > 0:
            await self._running.wait()
            await asyncio.sleep(left)

    @contextmanager
    def stopped_while(self) -> Iterator[None]:
        self._since = time.monotonic()
        self._running.clear()
        try:
            yield
        finally:
            self.stopped += time.monotonic() - self._since
            self._since = None
            self._running.set()


@dataclass(frozen=True)
class Landing:
    """Where one fault landed in the booking traffic."""

    name: str
    fault: str  # what it did
    planned: float  # seconds of the plan
    at: float  # wall seconds since the run started
    arrived: int  # customers arrived by then
    in_flight: int  # bookings started and not finished when it was injected
    took: float  # seconds its injection took (the clock was stopped meanwhile)
    in_flight_after: int  # bookings in flight when the injection was done
    needed: int  # bookings it had to land on

    @property
    def hit(self) -> bool:
        return self.in_flight >= self.needed


@dataclass
class Traffic:
    """Customers arrived and bookings in flight."""

    expected: int = 0  # customers who will arrive
    arrived: int = 0
    in_flight: int = 0
    first: float | None = None  # wall time of the first and the last arrival
    last: float | None = None
    _changed: asyncio.Condition = field(default_factory=asyncio.Condition, init=False)

    def coming(self, customers: int) -> None:
        self.expected += customers

    async def booking(self, purchase: Awaitable[T]) -> T:
        self.arrived += 1
        await self._count(+1)
        self.first = self.first or time.monotonic()
        self.last = time.monotonic()
        try:
            return await purchase
        finally:
            await self._count(-1)

    async def _count(self, change: int) -> None:
        async with self._changed:
            self.in_flight += change
            self._changed.notify_all()

    async def busy(self, at_least: int, within: float) -> bool:
        """Wait up to `within` seconds for `at_least` bookings in flight."""
        with suppress(TimeoutError):
            async with asyncio.timeout(within), self._changed:
                await self._changed.wait_for(lambda: self.in_flight >= at_least)
        return self.in_flight >= at_least
