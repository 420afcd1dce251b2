"""The provider HTTP client against servers that answer as real ones can, over real sockets."""

import asyncio
import base64
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass

import pytest
import trustme

from services.common import http_client
from services.common.http_client import HttpClient, HttpClientError

pytestmark = pytest.mark.integration

Handler = Callable[["Conversation"], Awaitable[None]]
OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


@dataclass
class Conversation:
    """One accepted connection, as the server sees it."""

    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter

    async def request(self) -> bytes:
        """The next whole request (head and body), or b"" when the client closed."""
        try:
            head = await self.reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError:
            return b""
        length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n")
                      if line.lower().startswith(b"content-length:"))
        return head + await self.reader.readexactly(length)

    async def answer(self, raw: bytes) -> None:
        self.writer.write(raw)
        await self.writer.drain()


@dataclass
class Server:
    port: int = 0
    connections: int = 0

    @property
    def url(self) -> str:
        return f"http://localhost:{self.port}/v1/messages?x=1"


@asynccontextmanager
async def serving(handle: Handler, tls: ssl.SSLContext | None = None) -> AsyncIterator[Server]:
    server = Server()

    async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        server.connections += 1
        try:
            await handle(Conversation(reader, writer))
        except ConnectionError:
            pass  # the client closed first: what these tests make it do
        finally:
            writer.close()

    listener = await asyncio.start_server(accept, "127.0.0.1", 0, ssl=tls)
    server.port = listener.sockets[0].getsockname()[1]
    try:
        yield server
    finally:
        listener.close()


def answering(*answers: bytes, record: list[bytes] | None = None) -> Handler:
    """On each connection, answer its requests with `answers` in turn, then close it."""
    async def handle(talk: Conversation) -> None:
        for raw in answers:
            request = await talk.request()
            if not request:
                return
            if record is not None:
                record.append(request)
            await talk.answer(raw)
    return handle


@pytest.fixture
async def client() -> AsyncIterator[HttpClient]:
    client = HttpClient()
    yield client
    await client.aclose()


async def test_a_request_carries_its_headers_and_body_and_the_connection_is_kept(client: HttpClient) -> None:
    seen: list[bytes] = []
    created = b"HTTP/1.1 201 Created\r\nContent-Length: 4\r\nX-A: 1\r\nx-a: 2\r\n\r\nmore"
    async with serving(answering(OK, created, record=seen)) as server:
        first = await client.post(server.url, {"X-Trace-Id": "t-1"}, b'{"id":1}')
        second = await client.post(server.url, {}, b"")
    assert (first.status, first.body) == (200, b"ok")
    assert (second.status, second.body, second.headers["x-a"]) == (201, b"more", "1, 2")
    assert server.connections == 1
    head, body = seen[0].split(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    assert lines[0] == b"POST /v1/messages?x=1 HTTP/1.1"
    assert f"Host: localhost:{server.port}".encode() in lines
    assert {b"X-Trace-Id: t-1", b"Content-Length: 8"} <= set(lines)
    assert body == b'{"id":1}'


async def test_credentials_in_the_url_go_as_basic_authorization_not_in_the_host(client: HttpClient) -> None:
    seen: list[bytes] = []
    async with serving(answering(OK, record=seen)) as server:
        url = server.url.replace("http://", "http://venue%40box:p%3Ass@")
        assert (await client.post(url, {}, b"")).status == 200
    lines = seen[0].split(b"\r\n\r\n")[0].split(b"\r\n")
    assert f"Host: localhost:{server.port}".encode() in lines
    assert b"Authorization: Basic " + base64.b64encode(b"venue@box:p:ss") in lines


async def test_a_chunked_answer_is_read_whole(client: HttpClient) -> None:
    chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n4\r\ndefg\r\n0\r\n\r\n"
    async with serving(answering(chunked, OK)) as server:
        assert (await client.post(server.url, {}, b"")).body == b"abcdefg"
        assert (await client.post(server.url, {}, b"")).body == b"ok"
    assert server.connections == 1


async def test_an_interim_answer_is_skipped_for_the_final_one(client: HttpClient) -> None:
    async with serving(answering(b"HTTP/1.1 100 Continue\r\n\r\n" + OK)) as server:
        response = await client.post(server.url, {}, b"")
    assert (response.status, response.body) == (200, b"ok")


async def test_an_answer_without_length_ends_with_its_connection(client: HttpClient) -> None:
    async with serving(answering(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nall of it")) as server:
        first = await client.post(server.url, {}, b"")
        second = await client.post(server.url, {}, b"")
    assert first.body == second.body == b"all of it"
    assert server.connections == 2


async def test_connection_close_is_not_reused(client: HttpClient) -> None:
    closing = b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok"

    async def answer_and_keep_open(talk: Conversation) -> None:
        await talk.request()
        await talk.answer(closing)
        await talk.request()  # the client closes; a second request here would hang the test

    async with serving(answer_and_keep_open) as server:
        for _ in range(3):
            assert (await client.post(server.url, {}, b"")).status == 200
    assert server.connections == 3


async def test_a_connection_the_server_closed_while_idle_is_not_used(client: HttpClient) -> None:
    async with serving(answering(OK)) as server:  # one answer per connection, then it closes
        await client.post(server.url, {}, b"")
        await asyncio.wait_for(until_idle_connections_closed(client), 30)
        assert (await client.post(server.url, {}, b"")).body == b"ok"
    assert server.connections == 2


async def until_idle_connections_closed(client: HttpClient) -> None:
    # The client learns of the close from its event loop; nothing to wait on but the flag.
    while any(not c.closed for idle in client._idle.values() for c in idle):  # noqa: ASYNC110
        await asyncio.sleep(0.01)


async def test_an_answer_nobody_asked_for_is_not_read_as_the_next_one(client: HttpClient) -> None:
    timeout = b"HTTP/1.1 408 Request Timeout\r\nContent-Length: 0\r\n\r\n"

    async def answer_then_speak_unasked(talk: Conversation) -> None:
        await talk.request()
        await talk.answer(OK + timeout)
        await talk.request()

    async with serving(answer_then_speak_unasked) as server:
        assert (await client.post(server.url, {}, b"")).status == 200
        assert (await client.post(server.url, {}, b"")).status == 200
    assert server.connections == 2


async def test_a_timed_out_request_closes_its_connection_so_no_late_answer_is_read(
    client: HttpClient,
) -> None:
    closed_by_the_client = asyncio.Event()

    async def answer_all_but_the_slow_one(talk: Conversation) -> None:
        while request := await talk.request():
            if b"slow" not in request:
                await talk.answer(OK)
        closed_by_the_client.set()

    async with serving(answer_all_but_the_slow_one) as server:
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.05):
                await client.post(server.url, {}, b"slow")
        await asyncio.wait_for(closed_by_the_client.wait(), 30)
        assert (await client.post(server.url, {}, b"fast")).body == b"ok"
    assert server.connections == 2


@pytest.mark.parametrize(
    ("answer", "error"),
    [
        (b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort", "before the answer was complete"),
        (b"SMTP ready\r\n\r\n", "malformed answer"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % (http_client.MAX_ANSWER_BYTES + 1)
         + b"x" * (http_client.MAX_ANSWER_BYTES + 1), "longer than"),
    ],
    ids=["cut short", "not http", "too long"],
)
async def test_an_incomplete_or_malformed_answer_is_an_error_and_the_next_request_is_answered(
    client: HttpClient, answer: bytes, error: str
) -> None:
    async def bad_first(talk: Conversation) -> None:
        await talk.request()
        await talk.answer(answer)

    async with serving(bad_first) as bad, serving(answering(OK)) as good:
        with pytest.raises(HttpClientError, match=error):
            await client.post(bad.url, {}, b"")
        assert (await client.post(good.url, {}, b"")).body == b"ok"


async def test_refused_connection_is_an_error(client: HttpClient) -> None:
    async with serving(answering(OK)) as server:
        url = server.url
    with pytest.raises(HttpClientError, match="could not connect"):
        await client.post(url, {}, b"")


@pytest.mark.parametrize("header", [("X-Evil", "a\r\nX-Injected: 1"), ("X-Evil\nX", "a")])
async def test_a_line_break_in_a_header_is_refused_before_anything_is_sent(
    client: HttpClient, header: tuple[str, str]
) -> None:
    async with serving(answering(OK)) as server:
        with pytest.raises(ValueError, match="line break"):
            await client.post(server.url, dict([header]), b"")
    assert server.connections == 0


@pytest.mark.parametrize(("url", "error"), [
    ("ftp://example.com/x", "not an http"),
    ("http:///x", "not an http"),
    ("http://localhost:99999/x", "Port"),
])
async def test_a_url_that_is_not_a_plain_http_one_is_refused(
    client: HttpClient, url: str, error: str
) -> None:
    with pytest.raises(ValueError, match=error):
        await client.post(url, {}, b"")


def https(server: Server) -> str:
    return server.url.replace("http:", "https:")


async def test_https_is_verified_against_the_trusted_certificates() -> None:
    authority = trustme.CA()
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    authority.issue_cert("localhost").configure_cert(server_tls)
    trusting = ssl.create_default_context()
    authority.configure_trust(trusting)
    async with serving(answering(OK, OK), tls=server_tls) as server:
        trusted = HttpClient(trusting)
        try:
            assert (await trusted.post(https(server), {}, b"")).body == b"ok"
        finally:
            await trusted.aclose()
        system_trust = HttpClient()
        try:
            with pytest.raises(HttpClientError, match="CERTIFICATE_VERIFY_FAILED"):
                await system_trust.post(https(server), {}, b"")
        finally:
            await system_trust.aclose()
