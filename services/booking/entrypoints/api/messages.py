"""What crosses between the server and the API: a request, and the answer to it."""

from collections.abc import Awaitable, Callable, Mapping
from typing import Protocol

JSON = "application/json"


class ClientGone(Exception):
    """The client closed its connection before its request's body arrived."""


class Headers(Protocol):
    """A request's headers, looked up by lower-case name (a dict, or granian's own)."""

    def get(self, key: str, default: None = None) -> str | None:
        """The first value of a header sent more than once."""

    def get_all(self, key: str) -> list[str]:
        """Every value, in the order sent (a proxy may add its own X-Forwarded-For line)."""

    def __contains__(self, key: str) -> bool: ...


class Request:
    """One request as the server handed it over, whichever interface it spoke (servers.py).

    `headers` answers `get(name)` for a lower-case name; `read_body` returns the whole body
    (raising BodyTooLarge past the limit). The handler sets `trace_id`, which the server
    sends back in X-Trace-Id.
    """

    __slots__ = ("headers", "method", "path", "path_params", "peer", "query_string", "read_body",
                 "trace_id")

    def __init__(self, method: str, path: str, query_string: str, headers: Headers,
                 peer: str | None, read_body: Callable[[], Awaitable[bytes]]) -> None:
        self.method, self.path, self.query_string = method, path, query_string
        self.headers, self.peer, self.read_body = headers, peer, read_body
        self.path_params: dict[str, str] = {}
        self.trace_id = ""


class Response:
    """An answer held whole in memory: a status, a body and its headers."""

    __slots__ = ("body", "headers", "status")

    def __init__(self, body: bytes | str = b"", status: int = 200, headers: Mapping[str, str] | None = None,
                 media_type: str | None = JSON) -> None:
        self.body = body.encode() if isinstance(body, str) else body
        self.status = status
        self.headers: dict[str, str] = dict(headers) if headers else {}
        if media_type is not None and self.body:
            self.headers["content-type"] = media_type
