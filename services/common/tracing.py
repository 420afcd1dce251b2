"""The trace id of the work in hand, one for the whole system.

The API adopts it from the request's X-Trace-Id (or starts one), the outbox row
and the Kafka `trace-id` header carry it on, a consumer sets it while it handles
the message, and provider calls send it as X-Trace-Id. Log records get it from here.
"""

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

_trace_id: ContextVar[str | None] = ContextVar("trace_id", default=None)


def current_trace_id() -> str | None:
    return _trace_id.get()


def set_trace_id(trace_id: str | None) -> None:
    """Make `trace_id` current for the rest of this task (an HTTP request's task)."""
    _trace_id.set(trace_id)


@contextmanager
def traced(trace_id: str | None) -> Iterator[None]:
    """Make `trace_id` current inside the block, then restore the one before."""
    token = _trace_id.set(trace_id)
    try:
        yield
    finally:
        _trace_id.reset(token)
