"""The relay's wake-up: a commit wakes one claim loop, and no commit goes unnoticed."""

import asyncio

import pytest

from workers.outbox_relay.wakeup import Wakeup

pytestmark = pytest.mark.unit
FOREVER = 3600.0  # a wait that only a notification ends


async def waiting(wakeup: Wakeup, count: int) -> list[asyncio.Task[None]]:
    seen = wakeup.generation
    waiters = [asyncio.create_task(wakeup.wait(seen, FOREVER)) for _ in range(count)]
    await settled(waiters)  # every waiter is parked
    assert len(wakeup._waiters) == count
    return waiters


async def settled(tasks: list[asyncio.Task[None]]) -> int:
    """How many of `tasks` have returned, once the loop has run everything ready to run."""
    for _ in range(10):
        await asyncio.sleep(0)
    return sum(task.done() for task in tasks)


async def test_a_notification_wakes_one_waiting_loop_not_all() -> None:
    wakeup = Wakeup()
    waiters = await waiting(wakeup, 3)
    wakeup.notify()
    assert await settled(waiters) == 1
    wakeup.notify()
    assert await settled(waiters) == 2
    for waiter in waiters:
        waiter.cancel()


async def test_stopping_wakes_every_loop() -> None:
    wakeup = Wakeup()
    waiters = await waiting(wakeup, 3)
    wakeup.notify_all()
    assert await settled(waiters) == 3


async def test_a_notification_while_no_loop_waits_is_seen_by_the_next_wait() -> None:
    wakeup = Wakeup()
    seen = wakeup.generation  # a loop reads the generation, then claims
    wakeup.notify()  # a commit lands during the claim, with nobody waiting
    await asyncio.wait_for(wakeup.wait(seen, FOREVER), timeout=FOREVER)  # returns at once
    assert wakeup.generation == seen + 1


async def test_a_loop_that_timed_out_does_not_swallow_the_next_notification() -> None:
    wakeup = Wakeup()
    await wakeup.wait(wakeup.generation, 0.01)  # a poll interval runs out
    waiters = await waiting(wakeup, 1)
    wakeup.notify()
    assert await settled(waiters) == 1
