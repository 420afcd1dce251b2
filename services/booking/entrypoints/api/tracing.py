"""The trace id of the current request, carried on to outbox rows and Kafka headers."""

import re
import secrets

from services.common.tracing import current_trace_id, set_trace_id

__all__ = ["TRACE_HEADER", "adopt_trace_id", "current_trace_id"]

TRACE_HEADER = "x-trace-id"
VALID_TRACE_ID = re.compile(r"[A-Za-z0-9_.:-]{8,64}")


def adopt_trace_id(incoming: str | None) -> str:
    """Keep a caller's well-formed trace id, else start a new trace."""
    trace_id = incoming if incoming and VALID_TRACE_ID.fullmatch(incoming) else secrets.token_hex(16)
    set_trace_id(trace_id)
    return trace_id
