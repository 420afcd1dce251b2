"""Handle several messages at once without giving up the order that matters.

A consumer that handles one message at a time waits on every database round trip
and provider call in turn. `OrderedConcurrency` runs up to `limit` messages at
once and keeps the two orders a Kafka consumer relies on:

- messages with the same key (one aggregate) are handled one after another, in
  the order they arrived;
- messages of one lane (one partition) are *released* (acknowledged, so their
  offsets may be committed) in the order they arrived, each only once every one
  before it in its lane is handled. A crash therefore never commits past a
  message still in hand; it can only repeat some that were already handled,
  which the handlers absorb.

A message holds its slot until it is released, so a message that cannot finish
(an outage being waited out) stops the reading after `limit` messages instead of
piling up the ones behind it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable
from typing import Any

Work = Callable[[], Awaitable[Any]]
Release = Callable[[], Awaitable[Any]]


class OrderedConcurrency:
    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError("limit must be at least 1")
        self._limit = limit
        self._slots = asyncio.Semaphore(limit)
        self._busy = 0
        self._room: tuple[int, asyncio.Future[None]] | None = None
        self._last_of_key: dict[Hashable, asyncio.Future[None]] = {}
        self._last_of_lane: dict[Hashable, asyncio.Future[None]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._failure: BaseException | None = None

    @property
    def in_hand(self) -> int:
        return len(self._tasks)

    async def room_for(self, count: int) -> None:
        """Wait until `count` slots (at most all of them) are free at the same time.

        Submitting a group only once it fits lets its messages start together, and so
        share their statements, instead of starting one by one as single slots free up.
        """
        count = min(count, self._limit)
        while self._limit - self._busy < count:
            room = asyncio.get_running_loop().create_future()
            self._room = (count, room)
            try:
                await room
            finally:
                self._room = None

    async def submit(self, lane: Hashable, key: Hashable | None, work: Work, release: Release) -> None:
        """Start `work` once a slot is free; `release` runs when its lane's order allows.

        A message without a key (`None`) is ordered only within its lane's releases.
        Raises the first error a `work` or `release` raised: nothing after it in its
        lane is released, and the caller should stop.
        """
        self._raise_failure()
        await self._slots.acquire()
        self._busy += 1
        self._raise_failure()
        loop = asyncio.get_running_loop()
        handled: asyncio.Future[None] = loop.create_future()
        released: asyncio.Future[None] = loop.create_future()
        key_before = self._last_of_key.get(key) if key is not None else None
        lane_before = self._last_of_lane.get(lane)
        if key is not None:
            self._last_of_key[key] = handled
        self._last_of_lane[lane] = released
        task = asyncio.create_task(self._run(work, release, key_before, lane_before, handled, released))
        self._tasks.add(task)
        task.add_done_callback(lambda done: self._finished(done, lane, key, handled, released))

    async def drain(self, within: float | None = None) -> bool:
        """Wait until every message submitted so far is released; False if `within` passed first."""
        if not self._tasks:
            return True
        _, pending = await asyncio.wait(set(self._tasks), timeout=within)
        return not pending

    async def close(self, grace: float) -> None:
        """Let the messages in hand finish for up to `grace` seconds, then cancel the rest.

        A cancelled message is not released: it is read again, where the group resumes.
        """
        if not await self.drain(grace):
            for task in list(self._tasks):
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _run(
        self, work: Work, release: Release, key_before: asyncio.Future[None] | None,
        lane_before: asyncio.Future[None] | None, handled: asyncio.Future[None],
        released: asyncio.Future[None],
    ) -> None:
        try:
            await _after(key_before)
            await work()
            handled.set_result(None)
            await _after(lane_before)
            await release()
            released.set_result(None)
        finally:
            self._busy -= 1
            self._slots.release()
            self._wake_room()

    def _finished(
        self, task: asyncio.Task[None], lane: Hashable, key: Hashable | None,
        handled: asyncio.Future[None], released: asyncio.Future[None],
    ) -> None:
        self._tasks.discard(task)
        if key is not None and self._last_of_key.get(key) is handled:
            del self._last_of_key[key]
        if self._last_of_lane.get(lane) is released:
            del self._last_of_lane[lane]
        error = None if task.cancelled() else task.exception()
        if error is not None and self._failure is None:
            self._failure = error
        # What waits on a message that failed or was cancelled waits forever: stop it too.
        for future in (handled, released):
            if not future.done():
                future.cancel()

    def _wake_room(self) -> None:
        if self._room is None:
            return
        wanted, room = self._room
        if self._limit - self._busy >= wanted and not room.done():
            room.set_result(None)

    def _raise_failure(self) -> None:
        if self._failure is not None:
            raise self._failure


async def _after(before: asyncio.Future[None] | None) -> None:
    """Wait for `before` without the power to cancel it (a plain await would, if cancelled)."""
    if before is None:
        return
    await asyncio.wait((before,))
    if before.cancelled():
        raise asyncio.CancelledError
