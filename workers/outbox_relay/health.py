"""Dependency health: capped exponential backoff with jitter, logged per state change.

While a dependency is down every failed attempt only sleeps; the log gets one line
when it goes down and one when it comes back, never a line per retry.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable

log = logging.getLogger("workers.outbox_relay")


def describe(error: BaseException) -> str:
    """'ErrorClass: message', the format the DLQ CLI reads back from last_error."""
    name = type(error).__name__
    # aiokafka's text already names the class ("[Error 10] Name: ..."): keep one.
    _, named, rest = str(error).partition(f"{name}: ")
    return f"{name}: {rest if named else error}"


def backoff_delay(failures: int, initial: float, cap: float) -> float:
    """Seconds to wait after `failures` consecutive failures ("equal jitter")."""
    ceiling: float = min(cap, initial * 2.0 ** max(failures - 1, 0))
    return ceiling / 2 + random.uniform(0, ceiling / 2)  # noqa: S311 - jitter, not crypto


class Health:
    def __init__(
        self,
        name: str,
        initial: float,
        cap: float,
        on_change: Callable[[bool], None] | None = None,
    ) -> None:
        self.name = name
        self._initial = initial
        self._cap = cap
        self._on_change = on_change
        self.failures = 0
        self._down_since: float | None = None

    @property
    def up(self) -> bool:
        return self._down_since is None

    def succeeded(self) -> None:
        if self._down_since is None:
            return
        outage = time.monotonic() - self._down_since
        log.warning(
            "%s available again after %.1f s (%d failed attempts)",
            self.name, outage, self.failures,
        )
        self._down_since = None
        self.failures = 0
        if self._on_change:
            self._on_change(True)

    async def failed(self, error: BaseException) -> None:
        """Record a failed attempt and sleep the backoff delay before the next one."""
        self.failures += 1
        if self._down_since is None:
            self._down_since = time.monotonic()
            log.error(
                "%s unavailable (%s); retrying with backoff up to %.0f s",
                self.name, describe(error), self._cap,
            )
            if self._on_change:
                self._on_change(False)
        await asyncio.sleep(backoff_delay(self.failures, self._initial, self._cap))
