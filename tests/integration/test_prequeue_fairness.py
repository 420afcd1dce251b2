"""The pre-queue's shuffle, measured on thousands of tokens in real Redis (single and cluster).

Whoever arrived first before the sale gains nothing by it: the place each early token gets
is independent of its arrival (a uniformly random permutation, checked statistically with
a fixed seed so a failure reproduces), all early tokens are ahead of every later arrival,
and nobody is admitted before the sale.
"""

import asyncio
import math
import secrets
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest

from services.booking.adapters.waiting_room import WaitingRooms
from services.booking.domain.waiting_room import Lifetimes, Room, RoomPolicy
from services.common.redis_client import RedisClient, connect_redis

pytestmark = pytest.mark.integration

EARLY, LATE = 3_000, 200
SEED = 20_261_206
BINS = 10


@pytest.fixture(params=["single", "cluster"])
async def rooms(request: pytest.FixtureRequest, redis_url: str) -> AsyncIterator[WaitingRooms]:
    url = request.getfixturevalue("redis_cluster_url") if request.param == "cluster" else redis_url
    client: RedisClient = connect_redis(url, timeout=10)
    yield WaitingRooms(client, Lifetimes(600, 600), "fair" + secrets.token_hex(4))
    await client.aclose()


async def _pre_queue(rooms: WaitingRooms, sale: datetime) -> tuple[uuid.UUID, list[str]]:
    """A room whose sale opens at `sale`, and EARLY tokens in order of arrival."""
    concert_id = uuid.uuid4()
    policy = RoomPolicy(admit_per_second=1, max_active=1, sale_opens_at=sale)
    await rooms.publish(Room(concert_id, policy, version=1))
    tokens = []
    for n in range(EARLY):
        issued = await rooms.issue(concert_id, f"early-{n}")
        assert (issued.ticket.status, issued.ticket.position, issued.created) == ("PRE_QUEUE", None, True)
        tokens.append(issued.ticket.token)
    return concert_id, tokens


async def _places(rooms: WaitingRooms, tokens: list[str]) -> list[int]:
    """Each token's place from the front: 0 when ACTIVE, else its position."""
    states = await asyncio.gather(*(rooms.state(token, touch=False) for token in tokens))
    places = []
    for state in states:
        assert state is not None and state.ticket.position is not None
        places.append(state.ticket.position)
    return places


def _chi_square_limit(freedom: int, z: float = 3.09) -> float:
    """The chi-square value exceeded with probability 0.001 (Wilson-Hilferty)."""
    scale = 2 / (9 * freedom)
    return freedom * (1 - scale + z * math.sqrt(scale)) ** 3


def _independence(arrivals: list[int], places: list[int]) -> tuple[float, float]:
    """Spearman's rho of arrival and place, and the chi-square of their deciles' table."""
    n = len(arrivals)
    mean = (n - 1) / 2
    ranked = sorted(range(n), key=lambda i: places[i])
    rank = [0] * n
    for r, i in enumerate(ranked):
        rank[i] = r
    covariance = sum((a - mean) * (rank[i] - mean) for i, a in enumerate(arrivals))
    rho = covariance / sum((a - mean) ** 2 for a in arrivals)
    table = [[0] * BINS for _ in range(BINS)]
    for i, a in enumerate(arrivals):
        table[a * BINS // n][rank[i] * BINS // n] += 1
    expected = n / BINS / BINS
    chi = sum((cell - expected) ** 2 / expected for row in table for cell in row)
    return rho, chi


async def test_the_pre_queue_is_a_fair_shuffle_ahead_of_later_arrivals(rooms: WaitingRooms) -> None:
    sale = datetime.now(UTC) + timedelta(seconds=3)
    concert_id, early = await _pre_queue(rooms, sale)
    twin_id, twin = await _pre_queue(rooms, sale)

    # Before the sale an admission step admits nobody and orders nobody.
    step = await rooms.admit(concert_id, SEED)
    assert step is not None and (step.admitted, step.released, step.waiting) == (0, 0, EARLY)
    await asyncio.sleep(max(0.0, (sale - datetime.now(UTC)).total_seconds()))
    # Arrivals after the sale but before the shuffle already count the pre-queue ahead.
    late = [await rooms.issue(concert_id, f"late-{n}") for n in range(LATE)]
    assert [issued.ticket.position for issued in late] == list(range(EARLY + 1, EARLY + LATE + 1))

    step = await rooms.admit(concert_id, SEED)
    assert step is not None and (step.released, step.admitted) == (EARLY, 1)

    places = await _places(rooms, early)
    # A permutation: one admitted, the rest at 1..EARLY-1, no place given twice...
    assert sorted(places) == list(range(EARLY))
    # ...all ahead of the later arrivals, who kept their order behind them.
    assert await _places(rooms, [issued.ticket.token for issued in late]) == list(range(EARLY, EARLY + LATE))
    # Arrival and place are independent (p < 0.001 for each test under a fair shuffle).
    rho, chi = _independence(list(range(EARLY)), places)
    assert abs(rho) < 3.29 / math.sqrt(EARLY - 1), rho
    assert chi < _chi_square_limit((BINS - 1) ** 2), chi
    # Not the order of arrival, nor its reverse.
    assert places[:100] != sorted(places[:100]) and places[:100] != sorted(places[:100], reverse=True)

    # The same seed over the same arrivals gives the same order: a failure can be replayed.
    twin_step = await rooms.admit(twin_id, SEED)
    assert twin_step is not None and twin_step.released == EARLY
    assert await _places(rooms, twin) == places
