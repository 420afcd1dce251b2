"""/metrics on METRICS_HOST:METRICS_PORT, apart from the public port (API.md §2).

booking-api binds the address once, before its server forks the workers (`listen`), and
every worker serves that one socket; whichever answers a scrape reads the whole API's
metrics (metrics.py sums the workers' files). Binding once, rather than in each worker
with SO_REUSEPORT, makes a port already taken (another API on the host) stop the process
at start instead of letting two deployments answer each other's scrapes. An app started
without booking-api (tests, an embedding server) binds its own. The server speaks just
enough HTTP/1.1 for a scraper: one GET per connection, then close.
"""

import asyncio
import logging
import socket
from collections.abc import Awaitable, Callable

log = logging.getLogger(__name__)

MAX_REQUEST_BYTES = 16 * 1024
READ_TIMEOUT_SECONDS = 5.0
Exposition = Callable[[], Awaitable[tuple[bytes, str]]]  # the body and its content type


def _answer(status: str, body: bytes, content_type: str = "text/plain; charset=utf-8") -> bytes:
    head = (f"HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n")
    return head.encode() + body


async def _serve_one(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                     exposition: Exposition) -> None:
    try:
        async with asyncio.timeout(READ_TIMEOUT_SECONDS):
            head = await reader.readuntil(b"\r\n\r\n")
        method, _, rest = head.partition(b" ")
        path = rest.partition(b" ")[0].partition(b"?")[0]
        if path != b"/metrics":
            writer.write(_answer("404 Not Found", b"only /metrics here\n"))
        elif method not in (b"GET", b"HEAD"):
            writer.write(_answer("405 Method Not Allowed", b"GET /metrics\n"))
        else:
            body, content_type = await exposition()
            answer = _answer("200 OK", body, content_type)
            writer.write(answer if method == b"GET" else answer[: len(answer) - len(body)])
        await writer.drain()
    except (TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
        pass  # a scraper that went away or sent nonsense gets nothing more
    except Exception:  # a failed scrape must never take the worker down
        log.exception("metrics scrape failed")
    finally:
        writer.close()


_listening: socket.socket | None = None  # bound by `listen` in the process that forks the workers


def listen(host: str, port: int) -> None:
    """Bind the metrics address now, for the worker processes forked after this to serve.

    Raises OSError when the address is taken.
    """
    global _listening
    _listening = socket.create_server((host, port), backlog=128)


async def start_metrics_server(host: str, port: int, exposition: Exposition) -> asyncio.Server:
    """Serve scrapes on the socket `listen` bound, else on one of our own; close the returned
    server to stop."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _serve_one(reader, writer, exposition)

    if _listening is not None:
        return await asyncio.start_server(handle, sock=_listening, limit=MAX_REQUEST_BYTES)
    return await asyncio.start_server(handle, host, port, limit=MAX_REQUEST_BYTES)
