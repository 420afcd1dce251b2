"""One round trip for many callers: concurrent calls of the same statement, run as one.

A consumer worker handles several messages at once (CONSUMER_CONCURRENCY), and they
reach the same step at about the same time: the messages of one poll start together,
so their first statements are issued in the same turn of the event loop. A `Coalescer`
gathers the calls made until the loop's next turn (or for `linger` seconds after the
first) and runs them as one call of `run_many`, which returns one result per item in
order; each caller gets its own result (an exception among the results is raised to its
caller alone), or the error of the whole call. Items of one key never share a call: the
later one waits for the next.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")


class Coalescer(Generic[T, R]):
    def __init__(self, run_many: Callable[[list[T]], Awaitable[list[R]]], *,
                 key: Callable[[T], Hashable], linger: float = 0.0, most: int = 200) -> None:
        self._run_many = run_many
        self._key = key
        self._linger = linger
        self._most = most
        self._pending: list[tuple[T, asyncio.Future[R]]] = []
        self._scheduled = False
        self._running: set[asyncio.Task[None]] = set()

    async def __call__(self, item: T) -> R:
        loop = asyncio.get_running_loop()
        result: asyncio.Future[R] = loop.create_future()
        self._pending.append((item, result))
        if not self._scheduled:
            self._scheduled = True
            if self._linger > 0:
                loop.call_later(self._linger, self._flush)
            else:
                loop.call_soon(self._flush)
        return await result

    def _flush(self) -> None:
        self._scheduled = False
        taken: list[tuple[T, asyncio.Future[R]]] = []
        later: list[tuple[T, asyncio.Future[R]]] = []
        keys: set[Hashable] = set()
        for item, result in self._pending:
            key = self._key(item)
            if key in keys or len(taken) == self._most:
                later.append((item, result))
            else:
                keys.add(key)
                taken.append((item, result))
        self._pending = later
        if later:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)
        task = asyncio.get_running_loop().create_task(self._run(taken))
        self._running.add(task)
        task.add_done_callback(self._running.discard)

    async def _run(self, taken: list[tuple[T, asyncio.Future[R]]]) -> None:
        try:
            results = await self._run_many([item for item, _ in taken])
            if len(results) != len(taken):
                raise RuntimeError(f"{len(results)} results for {len(taken)} items")
        except Exception as error:  # every caller learns it, and retries as it decides
            for _, result in taken:
                if not result.done():
                    result.set_exception(error)
            return
        except BaseException:
            for _, result in taken:
                result.cancel()
            raise
        for (_, result), value in zip(taken, results, strict=True):
            if result.done():  # its caller may have been cancelled meanwhile
                continue
            if isinstance(value, BaseException):
                result.set_exception(value)
            else:
                result.set_result(value)
