"""Every request's way through the API, whatever the server: trace id, route, answer, metrics."""

import time

from services.booking.entrypoints.api.http import Router
from services.booking.entrypoints.api.messages import Request, Response
from services.booking.entrypoints.api.metrics import REQUEST_METRICS
from services.booking.entrypoints.api.problems import ApiError, error_response
from services.booking.entrypoints.api.tracing import TRACE_HEADER, adopt_trace_id

MAX_BODY_BYTES = 64 * 1024
NO_ROUTE = ApiError(404, "NOT_FOUND", "no such route")


class BodyTooLarge(ApiError):
    """A body over MAX_BODY_BYTES: declared so, or read so (chunked, without Content-Length)."""

    def __init__(self) -> None:
        super().__init__(413, "PAYLOAD_TOO_LARGE", f"request bodies are limited to {MAX_BODY_BYTES} bytes")


def declared_too_large(content_length: str | None) -> bool:
    if content_length is None:
        return False
    return not content_length.isdigit() or int(content_length) > MAX_BODY_BYTES


class ApiHandler:
    """Answers a Request with a Response; the servers (servers.py) carry both."""

    def __init__(self, router: Router) -> None:
        self._router = router

    async def __call__(self, request: Request) -> Response:
        request.trace_id = adopt_trace_id(request.headers.get(TRACE_HEADER))
        started = time.perf_counter()
        route = self._router.route(request)
        if route is None:
            response = error_response(NO_ROUTE, "")
        elif declared_too_large(request.headers.get("content-length")):
            response = error_response(BodyTooLarge(), "")
        else:
            response = await route.answer(request)
        if response.status == 413:  # its body is left unread, so the connection carries nothing more
            response.headers["connection"] = "close"
        REQUEST_METRICS.observe(request.method, route.path if route else "unmatched", response.status,
                                time.perf_counter() - started)
        return response
