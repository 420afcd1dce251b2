"""The event envelope: one format, decoded strictly."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import orjson
import pytest

from services.common.envelope import (
    Envelope,
    InvalidEnvelope,
    decode,
    encode,
    encode_with_data_json,
    header,
)

pytestmark = pytest.mark.unit


def sample() -> Envelope:
    return Envelope.new("PaymentCompleted", "payment", "pay-1", {"amount": 1000}, trace_id="t-1")


def test_round_trip_keeps_every_field() -> None:
    envelope = sample()

    assert decode(encode(envelope)) == envelope


def test_key_is_the_aggregate_id_and_headers_name_the_event() -> None:
    envelope = sample()

    assert envelope.key == b"pay-1"
    assert dict(envelope.headers) == {
        "event-id": str(envelope.id).encode(), "event-type": b"PaymentCompleted",
        "event-version": b"1", "trace-id": b"t-1",
    }


def test_spliced_data_decodes_like_dumped_data() -> None:
    envelope = sample()

    spliced = encode_with_data_json(envelope, b'{"amount": 1000}')

    assert decode(spliced) == decode(encode(envelope))


def document(**changes: object) -> bytes:
    fields = orjson.loads(encode(sample()))
    fields.update(changes)
    return orjson.dumps({k: v for k, v in fields.items() if v != "<drop>"})


@pytest.mark.parametrize(("value", "reason"), [
    (None, "tombstone"),
    (b"\x00garbage", "not JSON"),
    (b"[1, 2]", "JSON list"),
    (document(envelope=2), "unsupported envelope version"),
    (document(id="<drop>"), "'id' is missing"),
    (document(id="not-a-uuid"), "not a UUID"),
    (document(type=""), "non-empty string"),
    (document(version=True), "positive integer"),
    (document(version=0), "positive integer"),
    (document(occurred_at="2026-11-22T01:02:03"), "no time zone"),
    (document(occurred_at="yesterday"), "ISO 8601"),
    (document(data=[1]), "JSON object"),
    (document(trace_id=7), "non-empty string"),
])
def test_garbage_is_refused_with_the_reason(value: bytes | None, reason: str) -> None:
    with pytest.raises(InvalidEnvelope, match=reason):
        decode(value)


def test_missing_trace_id_is_allowed() -> None:
    envelope = Envelope(uuid.uuid4(), "T", 1, datetime.now(UTC), "a", "b", None, {})

    assert decode(encode(envelope)).trace_id is None
    assert "trace-id" not in dict(envelope.headers)


def test_header_reads_the_last_value_as_text() -> None:
    headers = [("x", b"1"), ("x", b"2"), ("bad", b"\xff")]

    assert header(headers, "x") == "2"
    assert header(headers, "bad") is None
    assert header(None, "x") is None
