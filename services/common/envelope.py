"""The one versioned JSON envelope every event travels in, on every topic.

Wire format (ENVELOPE_VERSION 1), UTF-8 JSON object:

    {"envelope": 1, "id": "<uuid>", "type": "PaymentCompleted", "version": 1,
     "occurred_at": "2026-11-22T01:02:03.123456+00:00",
     "aggregate_type": "payment", "aggregate_id": "<id>", "trace_id": "<id>" | null,
     "data": {...}}

The Kafka key is the aggregate id, so one aggregate's events share a partition and
keep their order. Headers repeat id, type, version and trace id so that routing,
dead-lettering and tracing work without parsing a value that may be garbage.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson

ENVELOPE_VERSION = 1

HEADER_EVENT_ID = "event-id"
HEADER_EVENT_TYPE = "event-type"
HEADER_EVENT_VERSION = "event-version"
HEADER_TRACE_ID = "trace-id"

Headers = list[tuple[str, bytes]]


class InvalidEnvelope(ValueError):
    """A message value is not a valid event envelope; the message says why."""


@dataclass(frozen=True, slots=True)
class Envelope:
    id: uuid.UUID
    type: str
    version: int
    occurred_at: datetime
    aggregate_type: str
    aggregate_id: str
    trace_id: str | None
    data: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def new(
        cls,
        type: str,
        aggregate_type: str,
        aggregate_id: str,
        data: Mapping[str, Any],
        *,
        version: int = 1,
        trace_id: str | None = None,
    ) -> Envelope:
        """Create an envelope for a new event, with a fresh id and the current time."""
        return cls(
            uuid.uuid4(), type, version, datetime.now(UTC), aggregate_type, aggregate_id,
            trace_id, data,
        )

    @property
    def key(self) -> bytes:
        return self.aggregate_id.encode()

    @property
    def headers(self) -> Headers:
        return kafka_headers(self.id, self.type, self.version, self.trace_id)


def kafka_headers(
    event_id: uuid.UUID, event_type: str, version: int, trace_id: str | None
) -> Headers:
    headers = [
        (HEADER_EVENT_ID, str(event_id).encode()),
        (HEADER_EVENT_TYPE, event_type.encode()),
        (HEADER_EVENT_VERSION, str(version).encode()),
    ]
    if trace_id:
        headers.append((HEADER_TRACE_ID, trace_id.encode()))
    return headers


def encode(envelope: Envelope) -> bytes:
    return encode_with_data_json(envelope, orjson.dumps(envelope.data))


def encode_with_data_json(envelope: Envelope, data_json: bytes) -> bytes:
    """Encode with `data` given as JSON text already (the relay has it from jsonb).

    `envelope.data` is ignored: splicing the text saves a parse and a dump per event.
    """
    head = orjson.dumps(
        {
            "envelope": ENVELOPE_VERSION,
            "id": str(envelope.id),
            "type": envelope.type,
            "version": envelope.version,
            "occurred_at": envelope.occurred_at.isoformat(),
            "aggregate_type": envelope.aggregate_type,
            "aggregate_id": envelope.aggregate_id,
            "trace_id": envelope.trace_id,
        }
    )
    return head[:-1] + b',"data":' + data_json + b"}"


def decode(value: bytes | None) -> Envelope:
    """Parse a message value strictly; raise InvalidEnvelope naming the first fault."""
    if value is None:
        raise InvalidEnvelope("empty message value (tombstone)")
    try:
        document = orjson.loads(value)
    except orjson.JSONDecodeError as error:
        raise InvalidEnvelope(f"value is not JSON: {error}") from None
    if not isinstance(document, dict):
        raise InvalidEnvelope(f"value is a JSON {type(document).__name__}, not an object")
    if document.get("envelope") != ENVELOPE_VERSION:
        raise InvalidEnvelope(f"unsupported envelope version {document.get('envelope')!r}")
    return Envelope(
        id=_uuid(document, "id"),
        type=_text(document, "type"),
        version=_positive_int(document, "version"),
        occurred_at=_timestamp(document, "occurred_at"),
        aggregate_type=_text(document, "aggregate_type"),
        aggregate_id=_text(document, "aggregate_id"),
        trace_id=_optional_text(document, "trace_id"),
        data=_object(document, "data"),
    )


def header(headers: Iterable[tuple[str, bytes | None]] | None, name: str) -> str | None:
    """The last value of header `name` as text, or None when absent or not UTF-8."""
    found = None
    for key, value in headers or ():
        if key == name and value is not None:
            found = value
    if found is None:
        return None
    try:
        return found.decode()
    except UnicodeDecodeError:
        return None


def _field(document: dict[str, Any], name: str) -> Any:
    if name not in document:
        raise InvalidEnvelope(f"field {name!r} is missing")
    return document[name]


def _text(document: dict[str, Any], name: str) -> str:
    value = _field(document, name)
    if not isinstance(value, str) or not value:
        raise InvalidEnvelope(f"field {name!r} must be a non-empty string, got {value!r}")
    return value


def _optional_text(document: dict[str, Any], name: str) -> str | None:
    if document.get(name) is None:
        return None
    return _text(document, name)


def _positive_int(document: dict[str, Any], name: str) -> int:
    value = _field(document, name)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidEnvelope(f"field {name!r} must be a positive integer, got {value!r}")
    return value


def _uuid(document: dict[str, Any], name: str) -> uuid.UUID:
    value = _text(document, name)
    try:
        return uuid.UUID(value)
    except ValueError:
        raise InvalidEnvelope(f"field {name!r} is not a UUID: {value!r}") from None


def _timestamp(document: dict[str, Any], name: str) -> datetime:
    value = _text(document, name)
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise InvalidEnvelope(f"field {name!r} is not an ISO 8601 time: {value!r}") from None
    if moment.tzinfo is None:
        raise InvalidEnvelope(f"field {name!r} has no time zone: {value!r}")
    return moment


def _object(document: dict[str, Any], name: str) -> dict[str, Any]:
    value = _field(document, name)
    if not isinstance(value, dict):
        raise InvalidEnvelope(f"field {name!r} must be a JSON object")
    return value
