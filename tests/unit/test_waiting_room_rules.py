"""A room's status over its hours, its policy changes, and the tokens bound to a concert."""

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from services.booking.domain.waiting_room import RoomPolicy, concert_of_token, new_token, room_status

pytestmark = pytest.mark.unit

NOW = datetime(2027, 1, 1, 10, tzinfo=UTC)
HOUR = timedelta(hours=1)


@pytest.mark.parametrize(("opens", "sale", "paused", "expected"), [
    (None, None, False, "OPEN"),
    (None, None, True, "PAUSED"),
    (NOW + HOUR, NOW + 2 * HOUR, False, "CLOSED"),
    (NOW + HOUR, None, True, "CLOSED"),
    (NOW - HOUR, NOW + HOUR, False, "PRE_QUEUE"),
    (None, NOW + HOUR, True, "PRE_QUEUE"),   # a pause shows once there is a line to hold
    (NOW - 2 * HOUR, NOW - HOUR, False, "OPEN"),
    (NOW, NOW, False, "OPEN"),               # the sale opens at its instant
])
def test_a_rooms_status_follows_its_hours(opens: datetime | None, sale: datetime | None, paused: bool,
                                          expected: str) -> None:
    policy = RoomPolicy(admit_per_second=5, max_active=10, queue_opens_at=opens, sale_opens_at=sale,
                        paused=paused)
    assert room_status(policy, NOW) == expected


def test_a_change_replaces_only_what_it_names() -> None:
    policy = RoomPolicy(5, 10, NOW, NOW + HOUR)
    assert policy.changed(paused=True) == RoomPolicy(5, 10, NOW, NOW + HOUR, paused=True)
    assert policy.changed(admit_per_second=7, max_active=3).changed(paused=False) == RoomPolicy(
        7, 3, NOW, NOW + HOUR)


def test_a_token_names_its_concert_and_nothing_else_passes_for_one() -> None:
    concert = uuid.uuid4()
    tokens = {new_token(concert) for _ in range(100)}
    assert len(tokens) == 100
    assert {concert_of_token(token) for token in tokens} == {concert}
    for bad in ("", "x", concert.hex, concert.hex + ".", "." + concert.hex, "z" * 32 + ".abc",
                concert.hex[:31] + ".abc", str(concert) + ".abc"):
        assert concert_of_token(bad) is None, bad
