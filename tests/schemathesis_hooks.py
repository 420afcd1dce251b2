"""schemathesis hooks (SCHEMATHESIS_HOOKS): make each request what a well-behaved client sends
where the document's schemas cannot say it, so every finding is a real mismatch.

- A fresh Idempotency-Key per request: a client never reuses a key for another request; a
  reused key is answered 422 IDEMPOTENCY_KEY_REUSED or replays the first answer (API.md §1),
  both proven by the contract tests.
- A waiting room's sale_opens_at not before its queue_opens_at, a rule between two fields
  (documented in the schema's description) that JSON Schema cannot state.
"""

import uuid
from datetime import datetime
from typing import Any

import schemathesis
from hypothesis.internal import lambda_sources
from schemathesis.transport.prepare import get_exclude_headers

from services.booking.entrypoints.api.guards import IDEMPOTENCY_KEY


def _undescribed(function: object, *args: object, **kwargs: object) -> str:
    return "lambda: <source not read>"


# hypothesis reads a lambda's source (ast.parse) only to describe a strategy in a message; deep
# in a generation, Python 3.11's ast.parse fails there with "SystemError: AST constructor
# recursion depth mismatch" and stops the run. Descriptions are not needed to find anything.
lambda_sources._lambda_description = _undescribed


def _moment(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else None


def _in_order(room: dict[str, Any]) -> None:
    queue, sale = _moment(room.get("queue_opens_at")), _moment(room.get("sale_opens_at"))
    if queue is not None and sale is not None and sale < queue:
        room["queue_opens_at"], room["sale_opens_at"] = room["sale_opens_at"], room["queue_opens_at"]


@schemathesis.hook
def before_call(context: Any, case: Any, **kwargs: Any) -> None:
    if get_exclude_headers(case):
        # A case that leaves out a required header: an edit here would make schemathesis take
        # it for a valid case again and send the header after all.
        return
    key = (case.headers or {}).get("Idempotency-Key")
    if isinstance(key, str) and IDEMPOTENCY_KEY.fullmatch(key):
        case.headers["Idempotency-Key"] = f"fuzz-{uuid.uuid4().hex}"
    if isinstance(case.body, dict) and isinstance(case.body.get("waiting_room"), dict):
        _in_order(case.body["waiting_room"])
