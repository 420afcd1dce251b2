"""The load generator's own cost, beside aiohttp's and httpx's, against a server that
does nothing: the CPU a client spends per request is CPU the system under test loses.
Also the workers' provider call (`ResilientCaller.post_json`, everything around the
request included), which each saga and notifier message makes once.

    python -m bench.calibration server PORT
    python -m bench.calibration client (raw|aiohttp|httpx|provider) PORT REQUESTS
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import Callable, Coroutine
from typing import Any

import uvloop

from bench.httpclient import Client

CONCURRENCY = 50
ANSWER = (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 15\r\n\r\n"
          b'{"status":"ok"}')
BODY = {"reservation_id": "5d7c0c52-0a3c-4f57-9d53-3f1f5b8ad0a1"}
HEADERS = {"Authorization": "Bearer " + "x" * 160}


class _Answering(asyncio.Protocol):
    """Answers every request at once; requests with bodies carry Content-Length."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        self.buffer = b""

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while (end := self.buffer.find(b"\r\n\r\n")) >= 0:
            head, rest = self.buffer[:end].lower(), self.buffer[end + 4:]
            length = 0
            if (at := head.find(b"content-length:")) >= 0:
                length = int(head[at + 15:].split(b"\r\n", 1)[0])
            if len(rest) < length:
                return
            self.buffer = rest[length:]
            self.transport.write(ANSWER)  # type: ignore[attr-defined]


def serve(port: int) -> None:
    async def main() -> None:
        server = await asyncio.get_running_loop().create_server(_Answering, "127.0.0.1", port)
        await server.serve_forever()

    uvloop.run(main())


async def _raw(port: int, count: int) -> None:
    async def user(n: int) -> None:
        client = Client("127.0.0.1", port)
        for _ in range(n):
            await client.request("POST", "/payments", HEADERS, BODY)
        client.close()

    await asyncio.gather(*(user(count // CONCURRENCY) for _ in range(CONCURRENCY)))


async def _aiohttp(port: int, count: int) -> None:
    import aiohttp

    connector = aiohttp.TCPConnector(limit=CONCURRENCY)
    async with aiohttp.ClientSession(connector=connector) as session:
        async def user(n: int) -> None:
            for _ in range(n):
                async with session.post(f"http://127.0.0.1:{port}/payments", json=BODY,
                                        headers=HEADERS) as response:
                    await response.read()

        await asyncio.gather(*(user(count // CONCURRENCY) for _ in range(CONCURRENCY)))


async def _httpx(port: int, count: int) -> None:
    import httpx

    limits = httpx.Limits(max_connections=CONCURRENCY)
    async with httpx.AsyncClient(limits=limits) as client:
        async def user(n: int) -> None:
            for _ in range(n):
                response = await client.post(f"http://127.0.0.1:{port}/payments", json=BODY,
                                             headers=HEADERS)
                response.read()

        await asyncio.gather(*(user(count // CONCURRENCY) for _ in range(CONCURRENCY)))


async def _provider(port: int, count: int) -> None:
    from services.common.http_resilience import ResiliencePolicy, ResilientCaller, provider_http

    async with provider_http() as client:
        # No rate limit to wait for: the client's cost alone.
        caller = ResilientCaller("calibration", client, ResiliencePolicy(rate_per_second=1e9, burst=10**6))

        async def user(n: int) -> None:
            for _ in range(n):
                await caller.post_json(f"http://127.0.0.1:{port}/payments", BODY, headers=HEADERS)

        await asyncio.gather(*(user(count // CONCURRENCY) for _ in range(CONCURRENCY)))


CLIENTS: dict[str, Callable[[int, int], Coroutine[Any, Any, None]]] = {
    "raw": _raw, "aiohttp": _aiohttp, "httpx": _httpx, "provider": _provider,
}


def measure(kind: str, port: int, count: int) -> dict[str, float]:
    run = CLIENTS[kind]
    uvloop.run(run(port, min(count, 2_000)))  # warm-up: imports, connections
    # Every thread's CPU, should a client send from threads of its own.
    cpu, wall = time.process_time(), time.perf_counter()
    uvloop.run(run(port, count))
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    return {"requests_per_second": count / wall, "cpu_us_per_request": cpu / count * 1e6}


if __name__ == "__main__":
    if sys.argv[1] == "server":
        serve(int(sys.argv[2]))
    else:
        print(json.dumps(measure(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))))
