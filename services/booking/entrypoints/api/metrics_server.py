"""/metrics on METRICS_HOST:METRICS_PORT, apart from the public port (API.md §2).

Every API worker process listens on the same address (SO_REUSEPORT); whichever answers
a scrape reads the whole API's metrics (metrics.py sums the workers' files). The server
speaks just enough HTTP/1.1 for a scraper: one GET per connection, then close.
"""

import asyncio
import logging
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


async def start_metrics_server(host: str, port: int, exposition: Exposition) -> asyncio.Server:
    """Listen for scrapes; close the returned server to stop."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _serve_one(reader, writer, exposition)

    return await asyncio.start_server(handle, host, port, reuse_port=True, limit=MAX_REQUEST_BYTES)
