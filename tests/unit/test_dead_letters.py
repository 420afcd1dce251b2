"""The dead-letter headers a consumer writes and the CLI reads back."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from workers.common.command_line import CliError, parse_duration
from workers.common.dead_letters import DeadLetter, dead_letter_headers, replay_count

pytestmark = pytest.mark.unit


def parked(headers: list[tuple[str, bytes]]) -> list[tuple[str, bytes]]:
    return dead_letter_headers(
        topic="booking.payments", partition=3, offset=42, headers=headers,
        error=ValueError("venue said no"), attempts=5, consumer="saga",
        failed_at=datetime(2026, 11, 22, 1, 2, 3, tzinfo=UTC),
    )


def test_parking_adds_the_facts_and_keeps_the_event_headers() -> None:
    headers = dict(parked([("event-id", b"e-1"), ("trace-id", b"t-1")]))

    assert headers == {
        "event-id": b"e-1", "trace-id": b"t-1",
        "dlq-original-topic": b"booking.payments", "dlq-original-partition": b"3",
        "dlq-original-offset": b"42", "dlq-error-class": b"ValueError",
        "dlq-error-message": b"venue said no", "dlq-attempts": b"5",
        "dlq-failed-at": b"2026-11-22T01:02:03+00:00", "dlq-consumer": b"saga",
        "dlq-replay-count": b"0",
    }


def test_parking_a_replayed_message_carries_its_replay_count_and_fresh_facts() -> None:
    replayed = [("event-id", b"e-1"), ("dlq-replay-count", b"2"), ("dlq-error-class", b"Old")]

    headers = parked(replayed)

    assert replay_count(headers) == 2
    assert [value for key, value in headers if key == "dlq-error-class"] == [b"ValueError"]


def test_a_replay_drops_the_dlq_facts_and_counts_one_more() -> None:
    letter = DeadLetter("booking.payments.dlq", 0, 7, b"pay-1", b"{}",
                        parked([("event-id", b"e-1")]), 0)

    assert letter.message_id == "booking.payments.dlq:0:7"
    assert letter.original_topic == "booking.payments"
    assert (letter.error_class, letter.attempts, letter.consumer) == ("ValueError", 5, "saga")
    assert letter.replay_headers(1) == [("event-id", b"e-1"), ("dlq-replay-count", b"1")]


@pytest.mark.parametrize(("text", "seconds"), [("90s", 90), ("15m", 900), ("1h30m", 5400), ("7d", 604800)])
def test_durations(text: str, seconds: int) -> None:
    assert parse_duration(text).total_seconds() == seconds


@pytest.mark.parametrize("text", ["", "soon", "5", "1x", "1h 30m"])
def test_bad_durations_are_usage_errors(text: str) -> None:
    with pytest.raises(CliError) as raised:
        parse_duration(text)
    assert raised.value.code == 2
