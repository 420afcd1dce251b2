"""ASGI middleware: body size limit, trace id, request metrics, the router's refusals."""

import time

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from services.booking.entrypoints.api.http import route_template
from services.booking.entrypoints.api.metrics import REQUEST_METRICS
from services.booking.entrypoints.api.problems import ApiError, error_response
from services.booking.entrypoints.api.tracing import TRACE_HEADER, adopt_trace_id

MAX_BODY_BYTES = 64 * 1024
TRACE_KEY = TRACE_HEADER.encode()


class BodyTooLarge(ApiError):
    """Raised while reading an oversized body without Content-Length (chunked)."""

    def __init__(self) -> None:
        super().__init__(413, "PAYLOAD_TOO_LARGE", f"request bodies are limited to {MAX_BODY_BYTES} bytes")


class ApiMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        trace_id = adopt_trace_id(headers.get(TRACE_KEY, b"").decode("latin-1"))
        trace_header = (b"x-trace-id", trace_id.encode())
        status = 500
        started = time.perf_counter()

        async def send_with_trace(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), trace_header]
            await send(message)

        try:
            declared = headers.get(b"content-length", b"0")
            if not declared.isdigit() or int(declared) > MAX_BODY_BYTES:
                raise BodyTooLarge
            await self.app(scope, self._limited(receive), send_with_trace)
        except (HTTPException, ApiError) as error:  # refused before any route answered
            await error_response(error, "")(scope, receive, send_with_trace)
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
    def _observe(scope: Scope, status: int, seconds: float) -> None:
        REQUEST_METRICS.observe(scope["method"], route_template(scope), status, seconds)
