"""The waiting room's arithmetic: ETA and the pacing of polls."""

import pytest

from services.booking.domain.waiting_queue import eta_seconds, retry_after_seconds

pytestmark = pytest.mark.unit


def test_eta_counts_the_head_of_the_line_as_next() -> None:
    assert [eta_seconds(position, 50) for position in (0, 1, 50, 51, 500)] == [0, 1, 1, 2, 10]


@pytest.mark.parametrize(("position", "rate", "jitter", "expected"), [
    (1, 50, 1.0, 1),          # at the head: ask again in a second, never sooner
    (500, 50, 1.0, 5),        # ETA 10 s: half of it
    (500, 50, 0.8, 4),        # jitter spreads clients who joined together
    (500, 50, 1.2, 6),
    (10_000, 50, 1.0, 30),    # far back: at most 30 s between polls
    (10_000, 10_000, 1.0, 1),
])
def test_retry_after_is_half_the_eta_within_bounds(position: int, rate: int, jitter: float,
                                                   expected: int) -> None:
    assert retry_after_seconds(position, rate, jitter) == expected


def test_polls_of_a_crowd_grow_with_admissions_not_with_its_size() -> None:
    def polls_per_second(crowd: int, rate: int) -> float:
        return sum(1 / retry_after_seconds(position, rate, 1.0) for position in range(1, crowd + 1))

    # Below the 30 s cap, ten times the crowd brings fewer than three times the polls...
    assert polls_per_second(20_000, 500) < 3 * polls_per_second(2_000, 500)
    # ...while ten times the admission rate brings several times more.
    assert polls_per_second(2_000, 500) > 3 * polls_per_second(2_000, 50)
