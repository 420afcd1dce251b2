"""booking-api as deployed: granian's workers over RSGI, /metrics speaking for all of them."""

import asyncio
import json
import os
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from services.booking.config import Settings
from tests.deployed_api import BOOKING_API, api_environment, deployed_api
from tests.support import assert_problem, auth, new_user

pytestmark = pytest.mark.integration
WORKERS = 2


@pytest.fixture
def api_with_workers(settings: Settings) -> Iterator[tuple[str, str, subprocess.Popen[bytes]]]:
    with deployed_api(settings, WEB_CONCURRENCY=str(WORKERS)) as api:
        yield api


def _children(pid: int) -> list[int]:
    return [int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def _samples(exposition: str) -> dict[str, float]:
    return {sample.name: sample.value for family in text_string_to_metric_families(exposition)
            for sample in family.samples if not sample.labels}


def _rss(pid: int) -> int:
    return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")


async def test_metrics_count_every_worker_and_the_memory_of_all_processes(
    api_with_workers: tuple[str, str, subprocess.Popen[bytes]],
) -> None:
    url, metrics, api = api_with_workers
    children = _children(api.pid)
    assert len(children) >= WORKERS  # and multiprocessing's resource tracker
    requests = 200
    # New connections each time, so that both workers answer some of them.
    for _ in range(requests):
        async with httpx.AsyncClient(base_url=url, timeout=10) as http:
            assert (await http.get("/points", headers=auth(new_user()))).status_code == 200
    # Each worker adds its counts to the shared series at least once a second.
    async with httpx.AsyncClient(base_url=metrics, timeout=10) as http:
        deadline = time.monotonic() + 30
        while True:
            exposition = (await http.get("/metrics")).text
            answered = sum(sample.value for family in text_string_to_metric_families(exposition)
                           for sample in family.samples if sample.name == "http_requests_total"
                           and sample.labels.get("route") == "/points")
            assert answered <= requests
            if answered == requests:
                break
            assert time.monotonic() < deadline, f"the workers' counts stopped at {answered}"
            await asyncio.sleep(0.2)
    values = _samples(exposition)
    everyone = _rss(api.pid) + sum(_rss(pid) for pid in children)
    # Summed over the supervisor and both workers (memory moves a little between reads).
    assert 0.8 * everyone <= values["process_resident_memory_bytes"] <= 1.25 * everyone
    assert values["process_resident_memory_bytes"] > 1.5 * max(_rss(pid) for pid in children)
    started = os.stat(f"/proc/{api.pid}").st_mtime
    assert abs(values["process_start_time_seconds"] - started) < 5


async def test_the_deployed_server_answers_as_the_tests_server_does(
    api_with_workers: tuple[str, str, subprocess.Popen[bytes]],
) -> None:
    """The suite runs the app under uvicorn (ASGI); booking-api serves it over RSGI. The
    parts each interface translates on its own: bodies (declared, chunked, too large),
    HEAD, refusals with headers, the trace id, the query string."""
    url, _, _ = api_with_workers
    user = new_user("rsgi")
    json_auth = {**auth(user), "Content-Type": "application/json"}

    async def chunks(size: int) -> AsyncIterator[bytes]:
        yield b'{"amount": 10, "padding": "'
        for _ in range(size // 8_000):
            yield b"x" * 8_000
        yield b'"}'

    async with httpx.AsyncClient(base_url=url, timeout=10) as http:
        charged = await http.post("/points/charge", content=b'{"amount": 10}', headers=json_auth)
        assert charged.status_code == 200 and charged.json()["balance"] == 10, charged.text
        streamed = await http.post("/points/charge", content=chunks(16_000), headers=json_auth)
        assert streamed.status_code == 200 and streamed.json()["balance"] == 20, streamed.text
        declared = json.dumps({"amount": 10, "padding": "x" * 70_000}).encode()
        for too_large in (chunks(80_000), declared):
            # The body is left unread, so the connection closes after the 413 (a client
            # reusing it would find it closed). A client still sending may see it close
            # before the answer arrives, as the document says of 413: either way nothing
            # is charged (checked below).
            try:
                refused = await http.post("/points/charge", content=too_large, headers=json_auth)
            except (httpx.ReadError, httpx.WriteError, httpx.RemoteProtocolError):
                continue
            assert_problem(refused, 413)
            assert refused.headers["connection"] == "close"
        assert (await http.get("/points", headers=auth(user))).json()["balance"] == 20

        head = await http.head("/health/live")
        got = await http.get("/health/live", headers={"X-Trace-Id": "trace-from-client-1"})
        assert head.status_code == 200 and head.content == b""
        assert int(head.headers["content-length"]) == len(got.content) > 0
        assert got.headers["x-trace-id"] == "trace-from-client-1"

        refused = await http.delete("/health/live")
        assert_problem(refused, 405, "METHOD_NOT_ALLOWED")
        assert refused.headers["allow"] == "GET, HEAD"
        anonymous = await http.get("/points")
        assert_problem(anonymous, 401)
        assert anonymous.headers["www-authenticate"] == "Bearer"
        history = "/points/history"
        too_few = await http.get(history, params={"limit": "0"}, headers=auth(user))
        assert_problem(too_few, 422, "VALIDATION_FAILED")
        page = await http.get(history, params={"limit": "1"}, headers=auth(user))
        assert page.status_code == 200 and len(page.json()["items"]) == 1, page.text


def test_a_metrics_port_already_taken_stops_the_api_with_one_line(settings: Settings) -> None:
    """Two deployments on one host must not answer each other's scrapes."""
    with socket.create_server(("127.0.0.1", 0)) as taken:
        env = api_environment(settings, METRICS_PORT=str(taken.getsockname()[1]),
                              WEB_CONCURRENCY=str(WORKERS))
        api = subprocess.run([BOOKING_API], env=env, capture_output=True, text=True, timeout=60)
    assert api.returncode != 0
    assert "cannot serve metrics on METRICS_HOST:METRICS_PORT" in api.stderr.strip().splitlines()[-1]
