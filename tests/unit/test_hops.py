"""The e2e bench's hop arithmetic: deltas from made-up timestamps, and tickets stuck halfway."""

import pytest

from bench import hops

pytestmark = pytest.mark.unit

PAID = "payment 201 → relay publish (payment)"
PUBLISHED = "relay publish (payment) → saga consume"
VENUE = "saga consume → venue call"
CONFIRMED = "venue call → confirm commit"
ASKED = "confirm commit → relay publish (notification)"
CONSUMED = "relay publish (notification) → notifier consume"
ACCEPTED = "notifier consume → provider accepted"
WHOLE = "payment 201 → provider accepted"


def complete(start: float = 1_000.0) -> dict[str, float | None]:
    """A ticket that went the whole way, each point a known number of ms after the last."""
    offsets_ms = {"paid": 0, "payment_published": -2, "saga_started": 10, "venue_called": 13,
                  "saga_confirmed": 20, "notification_published": 25, "notifier_consumed": 40,
                  "provider_accepted": 100}
    return {key: start + ms / 1000 for key, ms in offsets_ms.items()}


def test_each_hop_is_the_time_between_its_two_ends_in_ms() -> None:
    found = hops.deltas(complete())

    assert list(found) == [PAID, PUBLISHED, VENUE, CONFIRMED, ASKED, CONSUMED, ACCEPTED, WHOLE]
    expected = {PAID: -2, PUBLISHED: 12, VENUE: 3, CONFIRMED: 7, ASKED: 5, CONSUMED: 15,
                ACCEPTED: 60, WHOLE: 100}
    assert found == pytest.approx(expected, abs=1e-6)


def test_a_ticket_not_yet_notified_has_the_hops_it_passed_and_no_whole() -> None:
    times = complete() | {"notifier_consumed": None, "provider_accepted": None}

    found = hops.deltas(times)

    assert set(found) == {PAID, PUBLISHED, VENUE, CONFIRMED, ASKED}
    assert not hops.notified_once(times, deliveries=1)


def test_a_missing_point_drops_both_hops_that_touch_it_only() -> None:
    times = complete()
    del times["venue_called"]  # the simulator forgot the call

    found = hops.deltas(times)

    assert VENUE not in found and CONFIRMED not in found
    assert found[WHOLE] == pytest.approx(100)
    assert hops.notified_once(times, deliveries=1)


@pytest.mark.parametrize("deliveries", [0, 2])
def test_no_message_or_a_second_one_is_not_notified_once(deliveries: int) -> None:
    assert not hops.notified_once(complete(), deliveries)


def test_by_hop_gathers_every_ticket_per_hop_in_chain_order_with_the_whole_last() -> None:
    stuck = complete(2_000.0) | {"provider_accepted": None}

    found = hops.by_hop([complete(), stuck, {}])

    assert list(found) == [PAID, PUBLISHED, VENUE, CONFIRMED, ASKED, CONSUMED, ACCEPTED, WHOLE]
    assert found[WHOLE] == pytest.approx([100])
    assert found[ACCEPTED] == pytest.approx([60])
    assert found[CONSUMED] == pytest.approx([15, 15])
