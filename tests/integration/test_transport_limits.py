"""booking-api's transport limits (API.md §1): a 16 KiB cap on a request's head, and a
deadline for the head, so neither a huge nor a slow client holds a connection for long."""

import asyncio
import subprocess
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest

from services.booking.config import Settings
from tests.deployed_api import deployed_api

pytestmark = pytest.mark.integration
HEADER_READ_TIMEOUT_SECONDS = 1
# Far beyond the timeout: the connection is expected to end long before; this only keeps
# a server that never closes it from hanging the test.
GUARD_SECONDS = 20


@pytest.fixture(scope="module")
def api(settings: Settings) -> Iterator[tuple[str, int]]:
    timeout = str(HEADER_READ_TIMEOUT_SECONDS)
    served: tuple[str, str, subprocess.Popen[bytes]]
    with deployed_api(settings, WEB_CONCURRENCY="1", HTTP_HEADER_READ_TIMEOUT_SECONDS=timeout) as served:
        address = urlsplit(served[0])
        assert address.hostname and address.port
        yield address.hostname, address.port


def _request(*headers: bytes) -> bytes:
    return b"GET /health/live HTTP/1.1\r\nHost: booking\r\n" + b"".join(headers) + b"\r\n"


def _padding(total: int) -> list[bytes]:
    """Headers of 1 KiB each (name, value and CRLF) adding up to `total` bytes."""
    lines = [b"X-Pad-%03d: %s\r\n" % (i, b"a" * (1024 - 13)) for i in range(total // 1024)]
    assert sum(map(len, lines)) == total
    return lines


async def _exchange(api: tuple[str, int], request: bytes) -> bytes:
    """Send `request` on a new connection and read until the server closes it.

    A server that closes with part of the request unread makes the kernel reset the
    connection, which may discard its answer: that reads as closed, no answer (b"").
    """
    reader, writer = await asyncio.open_connection(*api)
    try:
        writer.write(request)
        await writer.drain()
        return await asyncio.wait_for(reader.read(), GUARD_SECONDS)
    except (ConnectionResetError, BrokenPipeError):
        return b""
    finally:
        writer.close()


def _status(answer: bytes) -> int | None:
    return int(answer.split(b" ", 2)[1]) if answer else None


async def test_a_head_over_16_kib_is_refused_while_other_connections_are_served(
    api: tuple[str, int],
) -> None:
    kept_reader, kept_writer = await asyncio.open_connection(*api)
    try:
        too_large = _request(*_padding(17 * 1024), b"Connection: close\r\n")
        # 431, or the connection closed unanswered: never a 5xx, never served.
        assert _status(await _exchange(api, too_large)) in {431, None}

        for request in (_request(*_padding(15 * 1024), b"Connection: close\r\n"),
                        _request(b"Connection: close\r\n")):
            assert _status(await _exchange(api, request)) == 200
        kept_writer.write(_request(b"Connection: close\r\n"))
        await kept_writer.drain()
        answer = await asyncio.wait_for(kept_reader.read(), GUARD_SECONDS)
        assert _status(answer) == 200
    finally:
        kept_writer.close()


async def test_a_client_that_sends_half_a_head_is_disconnected(api: tuple[str, int]) -> None:
    half = _request(b"X-Slow: ")[:-4]
    answer = await _exchange(api, half)
    assert _status(answer) in {408, None}, answer[:200]


async def test_an_idle_kept_alive_connection_is_closed(api: tuple[str, int]) -> None:
    reader, writer = await asyncio.open_connection(*api)
    try:
        writer.write(_request())
        await writer.drain()
        served = await reader.readuntil(b"\r\n\r\n")
        assert _status(served) == 200
        # The body, then nothing more from the client: the server closes the connection.
        rest = await asyncio.wait_for(reader.read(), GUARD_SECONDS)
        assert b"HTTP/1.1" not in rest
    finally:
        writer.close()
