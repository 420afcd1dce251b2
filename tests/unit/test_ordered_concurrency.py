"""Several messages at once: per-key order, per-lane release order, bounded, never past a failure."""

import asyncio
import itertools
import random

import pytest

from workers.common.ordered_concurrency import OrderedConcurrency

pytestmark = pytest.mark.unit


class Journal:
    """What happened, in order: ("start"|"end"|"release", message number)."""

    def __init__(self) -> None:
        self.entries: list[tuple[str, int]] = []
        self.running = 0
        self.most_running = 0

    def work(self, number: int, seconds: float):
        async def run() -> None:
            self.entries.append(("start", number))
            self.running += 1
            self.most_running = max(self.most_running, self.running)
            await asyncio.sleep(seconds)
            self.running -= 1
            self.entries.append(("end", number))
        return run

    def release(self, number: int):
        async def run() -> None:
            self.entries.append(("release", number))
        return run

    def numbers(self, what: str) -> list[int]:
        return [number for kind, number in self.entries if kind == what]

    def index(self, what: str, number: int) -> int:
        return self.entries.index((what, number))


async def test_runs_up_to_the_limit_at_once() -> None:
    journal, runner = Journal(), OrderedConcurrency(limit=5)
    for number in range(40):
        await runner.submit(lane=number % 4, key=number, work=journal.work(number, 0.01),
                            release=journal.release(number))
    assert await runner.drain(within=10)
    assert journal.most_running == 5
    assert sorted(journal.numbers("release")) == list(range(40))
    assert runner.in_hand == 0


async def test_one_key_is_handled_one_message_after_another_in_arrival_order() -> None:
    journal, runner = Journal(), OrderedConcurrency(limit=16)
    keys = {number: f"booking-{number % 3}" for number in range(60)}
    rng = random.Random(7)
    for number, key in keys.items():
        await runner.submit(lane=rng.randrange(4), key=key, work=journal.work(number, rng.uniform(0, 0.01)),
                            release=journal.release(number))
    assert await runner.drain(within=10)
    assert journal.most_running > 1  # different keys did overlap
    for key in set(keys.values()):
        mine = [number for number, k in keys.items() if k == key]
        assert [n for n in journal.numbers("start") if n in mine] == mine
        for before, after in itertools.pairwise(mine):
            assert journal.index("end", before) < journal.index("start", after)


async def test_a_lane_releases_in_arrival_order_after_everything_before_is_handled() -> None:
    journal, runner = Journal(), OrderedConcurrency(limit=10)
    # Later messages finish first: release order must still be arrival order.
    for number in range(10):
        await runner.submit(lane="p0", key=number, work=journal.work(number, 0.05 - number * 0.005),
                            release=journal.release(number))
    assert await runner.drain(within=10)
    assert journal.numbers("end") != list(range(10))
    assert journal.numbers("release") == list(range(10))
    for number in range(10):
        released = journal.index("release", number)
        assert all(journal.index("end", before) < released for before in range(number + 1))


async def test_lanes_do_not_wait_for_each_other() -> None:
    journal, runner = Journal(), OrderedConcurrency(limit=4)
    gate = asyncio.Event()

    async def stuck() -> None:
        await gate.wait()

    await runner.submit(lane="p0", key="a", work=stuck, release=journal.release(0))
    await runner.submit(lane="p1", key="b", work=journal.work(1, 0), release=journal.release(1))
    await asyncio.sleep(0.05)
    assert journal.numbers("release") == [1]
    gate.set()
    assert await runner.drain(within=5)
    assert journal.numbers("release") == [1, 0]


async def test_a_message_holds_its_slot_until_released() -> None:
    journal, runner = Journal(), OrderedConcurrency(limit=3)
    gate = asyncio.Event()

    async def stuck() -> None:
        await gate.wait()

    await runner.submit(lane="p0", key="head", work=stuck, release=journal.release(0))
    for number in (1, 2):  # handled at once, but they cannot be released before the head
        await runner.submit(lane="p0", key=number, work=journal.work(number, 0),
                            release=journal.release(number))
    await asyncio.sleep(0.05)
    assert journal.numbers("end") == [1, 2]
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(
            runner.submit(lane="p0", key=3, work=journal.work(3, 0), release=journal.release(3)), 0.2
        )
    assert journal.numbers("release") == []
    gate.set()
    assert await runner.drain(within=5)
    assert journal.numbers("release") == [0, 1, 2]


async def test_a_failure_stops_the_lane_and_is_raised_to_the_caller() -> None:
    journal, runner = Journal(), OrderedConcurrency(limit=8)

    async def broken() -> None:
        await asyncio.sleep(0.02)
        raise RuntimeError("handler bug")

    await runner.submit(lane="p0", key=0, work=journal.work(0, 0), release=journal.release(0))
    await runner.submit(lane="p0", key=1, work=broken, release=journal.release(1))
    await runner.submit(lane="p0", key=2, work=journal.work(2, 0), release=journal.release(2))
    await runner.submit(lane="p0", key=1, work=journal.work(3, 0), release=journal.release(3))
    assert await runner.drain(within=5)
    assert journal.numbers("release") == [0]  # nothing at or after the failure
    assert 3 not in journal.numbers("start")  # the failed key's next message never ran
    with pytest.raises(RuntimeError, match="handler bug"):
        await runner.submit(lane="p1", key=9, work=journal.work(9, 0), release=journal.release(9))


async def test_close_cancels_what_does_not_finish_in_the_grace_and_releases_none_of_it() -> None:
    journal, runner = Journal(), OrderedConcurrency(limit=4)
    never = asyncio.Event()

    async def stuck() -> None:
        await never.wait()

    await runner.submit(lane="p0", key=0, work=journal.work(0, 0), release=journal.release(0))
    await runner.submit(lane="p0", key=1, work=stuck, release=journal.release(1))
    await runner.submit(lane="p0", key=2, work=journal.work(2, 0), release=journal.release(2))
    await runner.close(grace=0.1)
    assert journal.numbers("release") == [0]
    assert runner.in_hand == 0


def test_the_limit_is_at_least_one() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        OrderedConcurrency(limit=0)


async def test_room_for_a_group_waits_until_the_whole_group_fits() -> None:
    runner = OrderedConcurrency(limit=4)
    gates = {number: asyncio.Event() for number in range(4)}
    released = {number: asyncio.Event() for number in range(4)}

    def release(number: int):
        async def run() -> None:
            released[number].set()
        return run

    for number in range(4):
        await runner.submit(lane=number, key=number, work=gates[number].wait, release=release(number))
    room = asyncio.create_task(runner.room_for(2))
    gates[0].set()
    await asyncio.wait_for(released[0].wait(), 5)
    await asyncio.sleep(0)
    assert not room.done()  # one slot is free, the group needs two
    gates[1].set()
    await asyncio.wait_for(room, 5)
    assert released[1].is_set()
    # A group larger than the limit waits for every slot, and no more.
    bigger = asyncio.create_task(runner.room_for(10))
    gates[2].set()
    await asyncio.wait_for(released[2].wait(), 5)
    await asyncio.sleep(0)
    assert not bigger.done()
    gates[3].set()
    await asyncio.wait_for(bigger, 5)
    assert await runner.drain(within=5)
