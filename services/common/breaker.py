"""An asyncio circuit breaker per provider, built on pybreaker's state machine.

pybreaker 1.4 only guards synchronous calls (its `call_async` needs tornado).
So the awaited operation runs here, and its outcome is then replayed through
pybreaker's public `CircuitBreaker.call` with a synchronous stand-in: pybreaker
still does the counting, the trips, the half-open verdict and the listener
notifications. This adapter only decides admission, because pybreaker would
decide it inside that same synchronous call, after the awaited work is done.
"""

import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from enum import IntEnum
from typing import TypeVar

import pybreaker

from services.common.provider_metrics import PROVIDER_CIRCUIT_BREAKER_STATE

T = TypeVar("T")
log = logging.getLogger(__name__)


class BreakerState(IntEnum):
    """Breaker states, valued as the `provider_circuit_breaker_state` gauge reports them."""

    CLOSED = 0
    HALF_OPEN = 1
    OPEN = 2


_STATE_BY_NAME = {
    pybreaker.STATE_CLOSED: BreakerState.CLOSED,
    pybreaker.STATE_HALF_OPEN: BreakerState.HALF_OPEN,
    pybreaker.STATE_OPEN: BreakerState.OPEN,
}


class BreakerOpen(pybreaker.CircuitBreakerError):
    """The provider's breaker refused the call; nothing was sent."""

    def __init__(self, provider: str, reason: str) -> None:
        super().__init__(f"circuit breaker for {provider} is open: {reason}")
        self.provider = provider


class _ReportedFailure(Exception):
    """Stands in for an awaited failure when it is replayed through pybreaker.

    Replaying the real exception would graft pybreaker's frames onto the
    traceback the caller is about to see.
    """


def _succeed() -> None:
    return None


def _fail(error: Exception) -> None:
    raise error


def _every_exception(error: Exception) -> bool:
    return True


class _StateListener(pybreaker.CircuitBreakerListener):
    def __init__(self, breaker: "AsyncCircuitBreaker") -> None:
        self._owner = breaker

    def state_change(
        self,
        cb: pybreaker.CircuitBreaker,
        old_state: pybreaker.CircuitBreakerState | None,
        new_state: pybreaker.CircuitBreakerState,
    ) -> None:
        self._owner._on_state_change(_STATE_BY_NAME[new_state.name])


class AsyncCircuitBreaker:
    """Guard awaited calls to one provider.

    Opens after `fail_max` consecutive failures, lets one trial call through
    once `reset_timeout` seconds have passed (half-open), closes on its
    success and re-opens on its failure. Only exceptions for which
    `counts_as_failure` is true are failures; a normal return (a definite
    answer such as a 4xx) is a success, since the provider evidently works.
    Exceptions that do not count (cancellation, a bug) are not recorded at all.
    """

    def __init__(
        self,
        provider: str,
        *,
        fail_max: int = 5,
        reset_timeout: float = 30.0,
        counts_as_failure: Callable[[Exception], bool] = _every_exception,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.provider = provider
        self._counts_as_failure = counts_as_failure
        self._clock = clock
        self._opened_at = float("-inf")
        self._trial_in_flight = False
        self.changed_at = datetime.now(UTC)  # wall clock: reported beyond this process
        self._watchers: list[Callable[[BreakerState], None]] = []
        self._gauge = PROVIDER_CIRCUIT_BREAKER_STATE.labels(provider=provider)
        self._gauge.set(BreakerState.CLOSED)
        self._breaker = pybreaker.CircuitBreaker(
            fail_max=fail_max,
            reset_timeout=reset_timeout,
            listeners=[_StateListener(self)],
            name=provider,
        )

    @property
    def state(self) -> BreakerState:
        return _STATE_BY_NAME[self._breaker.current_state]

    @property
    def fail_counter(self) -> int:
        """Consecutive failures counted since the last success."""
        return self._breaker.fail_counter

    def watch(self, callback: Callable[[BreakerState], None]) -> None:
        """Call `callback(new_state)` on every state change, inside the call that caused it.

        It must be quick and must not await: it runs on the provider call's path, and
        before pybreaker stores the new state (`self.state` still reads the old one).
        """
        self._watchers.append(callback)

    async def call(self, operation: Callable[[], Awaitable[T]]) -> T:
        """Await `operation` if the breaker admits it, and record how it ended."""
        is_trial = self._admit()
        try:
            result = await operation()
        except Exception as error:
            if self._counts_as_failure(error):
                self._record_failure(error)
            raise
        finally:
            if is_trial:
                self._trial_in_flight = False
        self._record_success()
        return result

    def _admit(self) -> bool:
        """Refuse the call while open; return whether it is the half-open trial."""
        state = self.state
        if state is BreakerState.OPEN:
            remaining = self._opened_at + self._breaker.reset_timeout - self._clock()
            if remaining > 0:
                raise BreakerOpen(self.provider, f"next trial in {remaining:.2f}s")
            self._breaker.half_open()
            state = BreakerState.HALF_OPEN
        if state is BreakerState.HALF_OPEN:
            # One trial at a time: a recovering provider is not hit by the whole backlog.
            if self._trial_in_flight:
                raise BreakerOpen(self.provider, "a trial call is in flight")
            self._trial_in_flight = True
            return True
        return False

    def _record_success(self) -> None:
        if self._breaker.current_state == pybreaker.STATE_CLOSED and not self._breaker.fail_counter:
            return  # what pybreaker would do: nothing to reset, no state to change
        # A late success while open (another call tripped it meanwhile) is refused
        # by pybreaker with CircuitBreakerError; the breaker simply stays open.
        with contextlib.suppress(pybreaker.CircuitBreakerError):
            self._breaker.call(_succeed)

    def _record_failure(self, error: Exception) -> None:
        # pybreaker re-raises the failure, or CircuitBreakerError when it trips.
        with contextlib.suppress(pybreaker.CircuitBreakerError, _ReportedFailure):
            self._breaker.call(_fail, _ReportedFailure(repr(error)))

    def _on_state_change(self, state: BreakerState) -> None:
        if state is BreakerState.OPEN:
            self._opened_at = self._clock()
        self.changed_at = datetime.now(UTC)
        self._gauge.set(state)
        for watcher in self._watchers:
            try:
                watcher(state)
            except Exception:  # a watcher's bug must not fail the provider call
                log.exception("breaker watcher of %s failed", self.provider)
