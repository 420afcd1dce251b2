"""The trace id of the current request, carried on to outbox rows and Kafka headers."""

import re
import secrets
from contextvars import ContextVar

TRACE_HEADER = "x-trace-id"
VALID_TRACE_ID = re.compile(r"[A-Za-z0-9_.:-]{8,64}")

_trace_id: ContextVar[str | None] = ContextVar("trace_id", default=None)


def current_trace_id() -> str | None:
    return _trace_id.get()


def adopt_trace_id(incoming: str | None) -> str:
    """Keep a caller's well-formed trace id, else start a new trace."""
    trace_id = incoming if incoming and VALID_TRACE_ID.fullmatch(incoming) else secrets.token_hex(16)
    _trace_id.set(trace_id)
    return trace_id
