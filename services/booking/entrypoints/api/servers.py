"""The API as servers call it: RSGI for granian (booking-api), ASGI for any other server.

Both interfaces carry the same Request to the same ApiHandler and send back its Response;
only the translation differs. granian's RSGI hands over headers, body and response in
native calls where ASGI builds and passes a dict per message: the bare app answers
102,812 req/s over RSGI against 84,218 over ASGI on this machine (bench http's setup).
The lifespan (services opened before the first request, closed after the last) runs
under either: the ASGI lifespan protocol, or RSGI's worker start and stop hooks.
"""

import asyncio
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from typing import Any, cast

from granian._granian import RSGIHTTPProtocol as HTTPProtocol
from granian._granian import RSGIProtocolClosed as ProtocolClosed
from granian.rsgi import Scope

from services.booking.entrypoints.api.handling import MAX_BODY_BYTES, ApiHandler, BodyTooLarge
from services.booking.entrypoints.api.messages import ClientGone, Headers, Request, Response

Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
Lifespan = Callable[[], AbstractAsyncContextManager[None]]


async def _limited(chunks: AsyncIterable[bytes]) -> bytes:
    body = bytearray()
    async for chunk in chunks:
        body += chunk
        if len(body) > MAX_BODY_BYTES:
            raise BodyTooLarge
    return bytes(body)


def _with_trace(response: Response, request: Request) -> list[tuple[str, str]]:
    return [*response.headers.items(), ("x-trace-id", request.trace_id)]


class AsgiHeaders:
    """ASGI's header list read as granian's RSGI headers read: the first value by `get`,
    every value by `get_all`, so both servers see a request alike."""

    __slots__ = ("_values",)

    def __init__(self, raw: list[tuple[bytes, bytes]]) -> None:
        self._values: dict[str, list[str]] = {}
        for name, value in raw:
            self._values.setdefault(name.decode("latin-1"), []).append(value.decode("latin-1"))

    def get(self, key: str, default: None = None) -> str | None:
        found = self._values.get(key)
        return found[0] if found else default

    def get_all(self, key: str) -> list[str]:
        return list(self._values.get(key, ()))

    def __contains__(self, key: str) -> bool:
        return key in self._values


class BookingApp:
    """An ApiHandler and its lifespan, served over RSGI (`__rsgi__`) or ASGI (`__call__`)."""

    def __init__(self, handler: ApiHandler, lifespan: Lifespan) -> None:
        self._handler = handler
        self._lifespan = lifespan
        self._running: AbstractAsyncContextManager[None] | None = None

    # RSGI (granian): the worker's start and stop hooks run the lifespan on its loop.
    def __rsgi_init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._running = self._lifespan()
        loop.run_until_complete(self._running.__aenter__())

    def __rsgi_del__(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._running is not None:
            loop.run_until_complete(self._running.__aexit__(None, None, None))
            self._running = None

    async def __rsgi__(self, scope: Scope, proto: HTTPProtocol) -> None:
        headers = scope.headers

        async def read_body() -> bytes:
            try:
                if "content-length" in headers:  # its size is checked before any route reads it
                    return await proto()
                return await _limited(proto)  # iterated once: a second __aiter__ is a protocol error
            except ProtocolClosed:
                raise ClientGone from None

        peer = scope.client.rpartition(":")[0].strip("[]") or None  # "host:port", "[v6]:port"
        # granian's stub omits get_all, which RSGIHeaders has (every value, in order).
        request = Request(scope.method, scope.path, scope.query_string,
                          cast(Headers, headers), peer, read_body)
        response = await self._handler(request)
        if scope.method == "HEAD":
            answer = [*_with_trace(response, request), ("content-length", str(len(response.body)))]
            proto.response_empty(response.status, answer)
        else:
            proto.response_bytes(response.status, _with_trace(response, request), response.body)

    # ASGI: any other server (the tests run the app under uvicorn in their own loop).
    async def __call__(self, scope: Message, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._asgi_lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        headers = AsgiHeaders(scope["headers"])

        async def read_body() -> bytes:
            return await _limited(_asgi_chunks(receive))

        client = scope.get("client")
        request = Request(scope["method"], scope["path"], scope["query_string"].decode("latin-1"),
                          headers, client[0] if client else None, read_body)
        response = await self._handler(request)
        answer = [(name.encode("latin-1"), value.encode("latin-1"))
                  for name, value in _with_trace(response, request)]
        answer.append((b"content-length", str(len(response.body)).encode()))
        await send({"type": "http.response.start", "status": response.status, "headers": answer})
        await send({"type": "http.response.body", "body": response.body})

    async def _asgi_lifespan(self, receive: Receive, send: Send) -> None:
        await receive()  # lifespan.startup
        phase = "startup"
        try:
            async with self._lifespan():
                await send({"type": "lifespan.startup.complete"})
                phase = "shutdown"
                await receive()  # lifespan.shutdown
        except BaseException as error:
            await send({"type": f"lifespan.{phase}.failed", "message": repr(error)})
            raise
        await send({"type": "lifespan.shutdown.complete"})


async def _asgi_chunks(receive: Receive) -> AsyncIterator[bytes]:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientGone
        yield message.get("body", b"")
        if not message.get("more_body", False):
            return
