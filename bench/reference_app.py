"""The Python HTTP ceiling of this machine: a bare ASGI app that reads one header and answers
a small JSON body, the reference the `http` scenario divides the API's figures by.

It does the least any endpoint does (look at a header, answer JSON) with no framework, so
the server and the interpreter set its rate. Served by granian, as the API is:

    python -m granian --interface asgi --workers 2 --no-ws --http 1 bench.reference_app:app
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

BODY = b'{"status":"ok"}'
HEADERS = [(b"content-type", b"application/json"), (b"content-length", str(len(BODY)).encode())]


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


async def app(scope: Message, receive: Receive, send: Send) -> None:
    if scope["type"] == "lifespan":
        await _lifespan(receive, send)
        return
    # One header read, as every API route reads at least one (Authorization, the queue token).
    authorization = next((value for name, value in scope["headers"] if name == b"authorization"), b"")
    status = 200 if len(authorization) < 4096 else 431
    await send({"type": "http.response.start", "status": status, "headers": HEADERS})
    await send({"type": "http.response.body", "body": BODY})
