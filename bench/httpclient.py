"""A minimal HTTP/1.1 keep-alive client for the load generator.

Chosen on measured overhead (`python -m bench calibrate`): on this machine it spends
~7 µs of CPU per request where aiohttp spends ~80 µs and httpx ~1,900 µs, and the
generator shares two cores with the system it measures. One connection carries one
request at a time (no pipelining); httptools, uvicorn's parser, reads the answers.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, cast

import httptools
import orjson

IDLE_LIMIT_SECONDS = 4.0


class HttpError(Exception):
    """The connection failed or closed before a complete answer arrived."""


class _Connection(asyncio.Protocol):
    def __init__(self) -> None:
        self.parser = httptools.HttpResponseParser(self)
        self.transport: asyncio.Transport | None = None
        self.waiter: asyncio.Future[tuple[int, bytes]] | None = None
        self.chunks: list[bytes] = []
        self.keep_alive = True
        self.retry_after: float | None = None

    def on_message_begin(self) -> None:
        self.retry_after = None

    def on_header(self, name: bytes, value: bytes) -> None:
        if name.lower() == b"retry-after" and value.isdigit():
            self.retry_after = float(value)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports do not subclass asyncio.Transport, but behave as one.
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as error:
            self.fail(HttpError(f"malformed response: {error}"))

    def on_body(self, body: bytes) -> None:
        self.chunks.append(body)

    def on_message_complete(self) -> None:
        self.keep_alive = self.parser.should_keep_alive()
        body, self.chunks = b"".join(self.chunks), []
        waiter, self.waiter = self.waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result((self.parser.get_status_code(), body))

    def connection_lost(self, exc: Exception | None) -> None:
        self.fail(HttpError(f"connection closed: {exc or 'by the server'}"))

    def fail(self, error: Exception) -> None:
        self.keep_alive = False
        waiter, self.waiter = self.waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_exception(error)
        if self.transport is not None:
            self.transport.close()


class Client:
    """One keep-alive connection; `request` reconnects when the server closed it."""

    def __init__(self, host: str, port: int, timeout: float = 30.0) -> None:
        self.host, self.port, self.timeout = host, port, timeout
        self._connection: _Connection | None = None
        self._last_used = 0.0
        self._host_header = f"Host: {host}:{port}\r\n".encode()

    async def _connect(self) -> _Connection:
        connection = self._connection
        # uvicorn closes a connection idle for 5 s; reusing one that old could race that
        # close and lose a request, so it is replaced first.
        stale = time.monotonic() - self._last_used > IDLE_LIMIT_SECONDS
        if connection is None or stale or not connection.keep_alive \
                or connection.transport is None or connection.transport.is_closing():
            if connection is not None and connection.transport is not None:
                connection.transport.close()
            loop = asyncio.get_running_loop()
            transport, connection = await loop.create_connection(_Connection, self.host, self.port)
            # uvloop calls connection_made only after create_connection has returned.
            connection.transport = transport
            self._connection = connection
        return connection

    @property
    def retry_after(self) -> float | None:
        """Seconds the last answer's Retry-After asked for, if it had one."""
        return None if self._connection is None else self._connection.retry_after

    async def request(
        self, method: str, path: str, headers: dict[str, str] | None = None, json: Any = None
    ) -> tuple[int, bytes]:
        """Send one request; its status code and body."""
        payload = b"" if json is None else orjson.dumps(json)
        lines = [f"{method} {path} HTTP/1.1\r\n".encode(), self._host_header,
                 f"Content-Length: {len(payload)}\r\n".encode()]
        if json is not None:
            lines.append(b"Content-Type: application/json\r\n")
        lines += [f"{name}: {value}\r\n".encode() for name, value in (headers or {}).items()]
        lines += [b"\r\n", payload]
        connection = await self._connect()
        try:
            return await self._exchange(connection, b"".join(lines))
        finally:
            self._last_used = time.monotonic()

    async def _exchange(self, connection: _Connection, message: bytes) -> tuple[int, bytes]:
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[tuple[int, bytes]] = loop.create_future()
        connection.waiter = waiter
        assert connection.transport is not None
        connection.transport.write(message)
        # call_later rather than wait_for: a timer per request is the cheaper of the two.
        timer = loop.call_later(self.timeout, connection.fail, HttpError("timed out"))
        try:
            return await waiter
        except BaseException:
            # A late answer must not be read as the next request's.
            connection.fail(HttpError("abandoned"))
            raise
        finally:
            timer.cancel()

    def close(self) -> None:
        if self._connection is not None and self._connection.transport is not None:
            self._connection.transport.close()
        self._connection = None


class Pool:
    """Keep-alive connections to one server, at most `size` at once: a request beyond
    that waits for a connection to come free. A connection whose request failed is
    closed, never reused (a late answer must not be read as another request's)."""

    def __init__(self, host: str, port: int, size: int, timeout: float = 30.0) -> None:
        self.host, self.port, self.timeout = host, port, timeout
        self._free = asyncio.Semaphore(size)
        self._idle: list[Client] = []  # the last used first: the least likely to be stale

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[Client]:
        async with self._free:
            client = self._idle.pop() if self._idle else Client(self.host, self.port, self.timeout)
            try:
                yield client
            except BaseException:
                client.close()
                raise
            self._idle.append(client)

    def close(self) -> None:
        for client in self._idle:
            client.close()
        self._idle.clear()


def json_of(body: bytes) -> Any:
    return orjson.loads(body)
