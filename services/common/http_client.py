"""An HTTP/1.1 client for provider calls, on the caller's event loop.

The workers make one provider call per event, so the client's cost per request is part
of every payment's. This one runs in the worker's own thread: asyncio's transports,
httptools (llhttp) to read the answers, keep-alive connections kept per origin. A client
that sends from a thread of its own (pyreqwest) pays for a hand-off and a wake-up each
way per request; aiohttp pays for its generality. `make bench SCENARIO=calibrate`, its
`ResilientCaller.post_json` row (50 at once): 27-56 µs of client CPU per request on this
client, 85-111 µs on pyreqwest.

It does what the provider calls need and no more: POST with a body, `http` and `https`
(the system's CA certificates), credentials in the URL sent as Basic authorization,
answers framed by Content-Length, chunked, or the connection's close, and a cap on the
answer's size. The caller's `asyncio.timeout` bounds a request from connecting to the
last byte. Proxies are not used: nothing sits between a worker and a provider.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import ssl
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import cast
from urllib.parse import unquote, urlsplit

import httptools

__all__ = ["HttpClient", "HttpClientError", "Response"]

USER_AGENT = "booking-provider-client/1"
MAX_ANSWER_BYTES = 1 << 20
# Servers close keep-alive connections idle for a few seconds (uvicorn and Node.js: 5 s);
# a request sent on one as it closes is lost, so a connection idle this long is not reused.
IDLE_SECONDS = 4.0
MAX_IDLE_PER_ORIGIN = 64
_DEFAULT_PORTS = {"http": 80, "https": 443}


class HttpClientError(Exception):
    """No complete answer: could not connect, the connection broke, or the answer was malformed."""


@dataclass(frozen=True, slots=True)
class Response:
    status: int
    headers: Mapping[str, str]  # names in lower case; repeated headers joined with ", "
    body: bytes


@dataclass(frozen=True, slots=True)
class _Target:
    origin: tuple[str, str, int]
    host: str
    port: int
    tls: bool
    head: bytes  # request line, Host, User-Agent, and Authorization from the URL's credentials


@functools.lru_cache(maxsize=256)
def _target(url: str) -> _Target:
    parts = urlsplit(url)
    if parts.scheme not in _DEFAULT_PORTS or not parts.hostname:
        raise ValueError(f"not an http(s) URL: {url!r}")
    port = parts.port or _DEFAULT_PORTS[parts.scheme]
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    head = f"POST {path} HTTP/1.1\r\nHost: {parts.netloc.rpartition('@')[2]}\r\nUser-Agent: {USER_AGENT}\r\n"
    if parts.username is not None:  # as browsers and reqwest do: https://user:password@host/
        credentials = f"{unquote(parts.username)}:{unquote(parts.password or '')}".encode()
        head += f"Authorization: Basic {base64.b64encode(credentials).decode()}\r\n"
    return _Target((parts.scheme, parts.hostname, port), parts.hostname, port,
                   parts.scheme == "https", head.encode("ascii"))


def _header_lines(headers: Mapping[str, str], body: bytes) -> bytes:
    lines = []
    for name, value in headers.items():
        if "\n" in name or "\r" in name or "\n" in value or "\r" in value:
            raise ValueError(f"the header {name!r} holds a line break")
        lines.append(f"{name}: {value}\r\n")
    lines.append(f"Content-Length: {len(body)}\r\n\r\n")
    return "".join(lines).encode("latin-1")


class _Connection(asyncio.Protocol):
    """One keep-alive connection; one request at a time, its answer read by llhttp."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.reusable = False
        self.idle_since = 0.0
        self._parser = httptools.HttpResponseParser(self)
        self._waiter: asyncio.Future[Response] | None = None
        self._reset()

    def _reset(self) -> None:
        self._headers: dict[str, str] = {}
        self._chunks: list[bytes] = []
        self._size = 0
        self._headers_complete = False

    async def exchange(self, message: bytes) -> Response:
        self._waiter = asyncio.get_running_loop().create_future()
        self.reusable = False
        self._reset()
        assert self.transport is not None
        self.transport.write(message)
        return await self._waiter

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports do not subclass asyncio.Transport, but behave as one.
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as error:
            self._fail(HttpClientError(f"malformed answer: {error}"))

    def on_message_begin(self) -> None:
        if self._waiter is None:
            self._drop_unasked()

    def on_header(self, name: bytes, value: bytes) -> None:
        key, text = name.decode("latin-1").lower(), value.decode("latin-1")
        self._headers[key] = f"{self._headers[key]}, {text}" if key in self._headers else text

    def on_headers_complete(self) -> None:
        self._headers_complete = True

    def on_body(self, body: bytes) -> None:
        self._size += len(body)
        if self._size > MAX_ANSWER_BYTES:
            self._fail(HttpClientError(f"answer longer than {MAX_ANSWER_BYTES} bytes"))
        self._chunks.append(body)

    def on_message_complete(self) -> None:
        status = self._parser.get_status_code()
        if status < 200:  # an interim answer (100 Continue); the real one follows
            self._reset()
            return
        self.reusable = self._parser.should_keep_alive()
        self._answer(Response(status, self._headers, b"".join(self._chunks)))

    def eof_received(self) -> None:
        self.closed = True  # not to be taken for a request while the transport closes

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.reusable = False
        framed = "content-length" in self._headers or "transfer-encoding" in self._headers
        if self._headers_complete and not framed:
            # No Content-Length and not chunked: the answer ends where the connection does.
            self._answer(Response(self._parser.get_status_code(), self._headers, b"".join(self._chunks)))
        else:
            self._fail(HttpClientError(f"connection closed before the answer was complete: {exc or 'EOF'}"))

    def _drop_unasked(self) -> None:
        # An answer nobody asked for (a server's 408 before it closes an idle connection):
        # it must not be read as the next request's.
        self.close()

    def _answer(self, response: Response) -> None:
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(response)

    def _fail(self, error: HttpClientError) -> None:
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_exception(error)
        self.close()


class HttpClient:
    """Keep-alive HTTP/1.1 connections per origin, shared by a process's provider callers.

    Connections are opened as requests need them (the callers bound how many run at once)
    and at most `MAX_IDLE_PER_ORIGIN` are kept between requests. A connection whose request
    failed, timed out or was cancelled is closed, never reused: a late answer must not be
    read as another request's.
    """

    def __init__(self, ssl_context: ssl.SSLContext | None = None) -> None:
        self._ssl = ssl_context  # the system's, made at the first https connection
        self._idle: dict[tuple[str, str, int], list[_Connection]] = {}
        self._closed = False

    async def post(self, url: str, headers: Mapping[str, str], body: bytes) -> Response:
        """POST `body`; raises HttpClientError when no complete answer came.

        The caller bounds the exchange (`asyncio.timeout`): a request cancelled or timed
        out closes its connection.
        """
        if self._closed:
            raise RuntimeError("the HTTP client is closed")
        target = _target(url)
        message = target.head + _header_lines(headers, body) + body
        connection = self._idle_connection(target) or await self._connect(target)
        try:
            response = await connection.exchange(message)
        except BaseException:
            connection.close()
            raise
        self._release(target, connection)
        return response

    async def aclose(self) -> None:
        self._closed = True
        for connections in self._idle.values():
            for connection in connections:
                connection.close()
        self._idle.clear()

    def _idle_connection(self, target: _Target) -> _Connection | None:
        idle = self._idle.get(target.origin)
        now = time.monotonic()
        while idle:
            connection = idle.pop()  # the last used first: the least likely to be closing
            if not connection.closed and now - connection.idle_since < IDLE_SECONDS:
                return connection
            connection.close()
        return None

    async def _connect(self, target: _Target) -> _Connection:
        loop = asyncio.get_running_loop()
        if target.tls and self._ssl is None:
            self._ssl = ssl.create_default_context()  # reads the CA bundle: only if a provider needs it
        try:
            transport, connection = await loop.create_connection(
                _Connection, target.host, target.port,
                ssl=self._ssl if target.tls else None, server_hostname=target.host if target.tls else None,
            )
        except OSError as error:  # refused, unreachable, no such host, a certificate refused
            raise HttpClientError(f"could not connect to {target.host}:{target.port}: {error}") from error
        # uvloop calls connection_made only after create_connection has returned.
        connection.transport = transport
        return connection

    def _release(self, target: _Target, connection: _Connection) -> None:
        idle = self._idle.setdefault(target.origin, [])
        if self._closed or not connection.reusable or connection.closed or len(idle) >= MAX_IDLE_PER_ORIGIN:
            connection.close()
            return
        connection.idle_since = time.monotonic()
        idle.append(connection)
