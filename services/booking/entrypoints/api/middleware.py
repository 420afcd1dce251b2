"""ASGI middleware: body size limit, trace id, request metrics."""

import time

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from services.booking.entrypoints.api.metrics import ERRORS, LATENCY, REQUESTS
from services.booking.entrypoints.api.problems import problem
from services.booking.entrypoints.api.tracing import TRACE_HEADER, adopt_trace_id

MAX_BODY_BYTES = 64 * 1024


class BodyTooLarge(HTTPException):
    """Raised while reading an oversized body without Content-Length (chunked).

    An HTTPException, so FastAPI's body parsing lets it through to the problem
    handler as a 413 instead of turning it into "400 error parsing the body".
    """

    def __init__(self) -> None:
        super().__init__(413, f"request bodies are limited to {MAX_BODY_BYTES} bytes")


def _route_template(scope: Scope) -> str:
    """The matched route's template (FastAPI records it in the scope), never the raw path."""
    return str(getattr(scope.get("route"), "path", "unmatched"))


class ApiMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        trace_id = adopt_trace_id(headers.get(TRACE_HEADER.encode(), b"").decode("latin-1"))
        declared = headers.get(b"content-length", b"0")
        if not declared.isdigit() or int(declared) > MAX_BODY_BYTES:
            await self._too_large(scope, receive, send)
            return
        status = 500
        started = time.perf_counter()

        async def send_with_trace(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"x-trace-id", trace_id.encode())]
            await send(message)

        try:
            await self.app(scope, self._limited(receive), send_with_trace)
        except BodyTooLarge:
            await self._too_large(scope, receive, send)
            status = 413
        finally:
            self._observe(scope, status, time.perf_counter() - started)

    @staticmethod
    def _limited(receive: Receive) -> Receive:
        seen = 0

        async def limited() -> Message:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > MAX_BODY_BYTES:
                raise BodyTooLarge
            return message

        return limited

    @staticmethod
    async def _too_large(scope: Scope, receive: Receive, send: Send) -> None:
        response = problem(413, "PAYLOAD_TOO_LARGE", "Payload too large",
                           f"request bodies are limited to {MAX_BODY_BYTES} bytes")
        await response(scope, receive, send)

    @staticmethod
    def _observe(scope: Scope, status: int, seconds: float) -> None:
        route = _route_template(scope)
        REQUESTS.labels(scope["method"], route, str(status)).inc()
        LATENCY.labels(scope["method"], route).observe(seconds)
        if status >= 500:
            ERRORS.labels(route, str(status)).inc()
