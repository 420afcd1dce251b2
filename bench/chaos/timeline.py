"""One clock for customers and faults, and a record of the traffic each fault landed on.

Injecting a fault can take long: the broker's restart waits for every faust worker to
start again, 30 s and more on a loaded machine. On the wall clock the customers would
all have arrived by then, and the later faults would hit no booking at all. So the
run's clock stops while a fault is being injected: each fault lands after the same
share of customers whatever the machine's speed, and the rest arrive after it.

A fault also waits (briefly) for a booking in flight, and records the traffic it
landed on; a fault that landed on none tested nothing, and the ledger says so.
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

    fault: str
    planned: float  # seconds of the plan
    at: float  # wall seconds since the run started
    arrived: int  # customers arrived by then
    in_flight: int  # bookings started and not finished when it was injected
    took: float  # seconds its injection took (the clock was stopped meanwhile)
    in_flight_after: int  # bookings in flight when the injection was done

    @property
    def hit(self) -> bool:
        return self.in_flight > 0


@dataclass
class Traffic:
    """Customers arrived and bookings in flight."""

    arrived: int = 0
    in_flight: int = 0
    first: float | None = None  # wall time of the first and the last arrival
    last: float | None = None
    _busy: asyncio.Event = field(default_factory=asyncio.Event, init=False)

    async def booking(self, purchase: Awaitable[T]) -> T:
        self.arrived += 1
        self.in_flight += 1
        self._busy.set()
        self.first = self.first or time.monotonic()
        self.last = time.monotonic()
        try:
            return await purchase
        finally:
            self.in_flight -= 1
            if not self.in_flight:
                self._busy.clear()

    async def busy(self, within: float) -> bool:
        """Wait up to `within` seconds for a booking in flight."""
        with suppress(TimeoutError):
            async with asyncio.timeout(within):
                await self._busy.wait()
        return self.in_flight > 0
