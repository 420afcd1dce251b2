"""When the outbox says no relay is publishing: events have waited, and nothing was
published for as long."""

import pytest

from services.booking.adapters.outbox import OutboxStats

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(("oldest_age", "last_published_age", "publishing"), [
    (0.0, None, True),  # nothing waits, nothing ever published
    (5.0, None, True),  # waiting, but not yet for the bound
    (45.0, 2.0, True),  # a long wait behind a relay that is publishing others
    (45.0, 31.0, False),  # a wait, and the last publish as old: no relay publishes
    (45.0, None, False),  # a wait, and nothing published within the retention
])
def test_a_relay_publishes_unless_events_waited_and_nothing_was_published_as_long(
    oldest_age: float, last_published_age: float | None, publishing: bool,
) -> None:
    stats = OutboxStats(backlog=1, dead=0, oldest_age_seconds=oldest_age,
                        last_published_age_seconds=last_published_age)
    assert stats.relay_publishing(stalled_after=30) is publishing
