"""The trace id of the current request, carried on to outbox rows and Kafka headers."""

import random
import re

from services.common.tracing import current_trace_id, set_trace_id

__all__ = ["TRACE_HEADER", "adopt_trace_id", "current_trace_id"]

TRACE_HEADER = "x-trace-id"
VALID_TRACE_ID = re.compile(r"[A-Za-z0-9_.:-]{8,64}")


def adopt_trace_id(incoming: str | None) -> str:
    """Keep a caller's well-formed trace id, else start a new trace."""
    if incoming and VALID_TRACE_ID.fullmatch(incoming):
        trace_id = incoming
    else:  # unique, not secret: 128 random bits without a system call
        trace_id = f"{random.getrandbits(128):032x}"
    set_trace_id(trace_id)
    return trace_id
