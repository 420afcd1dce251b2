"""HTTP cost: the API's cheapest requests as ratios to a bare ASGI app measured in the same run.

Absolute requests per second swing by half on a shared 2-core machine; the ratio to the
Python HTTP ceiling measured minutes apart (DESIGN.md "Performance bars") swings much
less. The reference runs on granian with 2 workers, the API with 2 workers too, one after
the other; wrk loads both, 2 threads and 100 connections, so the ratio shows what the API
adds: its server, routing, auth, Redis, the database.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import orjson

from bench import checks
from bench.api import BookingApi, User, mint
from bench.cpu import cores_used, cpu_seconds
from bench.httpclient import Client, HttpError
from bench.report import ROOT, Outcome
from bench.scenarios.common import log_dir, prefix
from bench.scenarios.queue import SETTINGS
from bench.stack import RunningStack, running_stack
from bench.stats import Recorder
from bench.wrk import Rotation, WrkResult, require_wrk, run_wrk, write_users
from workers.devstack.processes import free_port

WORKERS = 2
PARTS = ["api", "queue"]  # the queue routes need Redis and the database, not the other workers
POLLERS = 2_000
REFERENCE = "bare ASGI app, granian 2 workers"
# Token issues need a user never seen before per request, minted in advance: as many as the
# poll rate (an upper bound: an issue does more than a poll) allows, with room to spare.
ISSUE_RATE_FLOOR, ISSUE_RATE_CAP, ISSUE_HEADROOM = 3_000, 20_000, 1.1
MAX_USERS = 999_999  # checks.seed_users numbers users with six digits


@dataclass(frozen=True)
class Phase:
    key: str
    label: str
    bar: float | None  # the least ratio to the reference, None for the reference itself


PHASES = {
    "reference": Phase("reference", f"reference: {REFERENCE}", None),
    "health": Phase("health", "API floor: GET /health/live", 0.8),
    "poll": Phase("poll", f"position poll: GET /queue/tokens/me, {POLLERS:,} users", 0.5),
    "issue": Phase("issue", "token issue: POST /queue/tokens, distinct users", 0.3),
}


@dataclass
class Measured:
    wrk: WrkResult
    server_cpu_ms: float  # the server's CPU per request, all its processes
    users: int = 0  # distinct users the requests rotated over (0: no users, one fixed request)
    cores: dict[str, float] | None = None  # cores each part of the system kept busy meanwhile


def run(options: argparse.Namespace) -> Outcome:
    require_wrk()  # before minutes of setup: say at once what is missing
    outcome = Outcome("http")
    directory = log_dir(options, "http")
    directory.mkdir(parents=True, exist_ok=True)
    results: dict[str, Measured] = {}
    # The reference stops before the stack starts: neither may take CPU from the other.
    with serving_reference(directory) as (url, pid):
        results["reference"] = measure(options, url + "/health", {"server": pid}, directory)
    workers = options.api_workers or WORKERS
    failure = ""
    try:
        measure_api(options, directory, workers, results)
    except Exception as error:  # the figures taken so far still stand; say what stopped the rest
        failure = f"{type(error).__name__}: {error}"[:300]
    report(outcome, results, workers)
    if failure:
        outcome.add("API phases", failure, "all measured", False)
    return outcome


def measure_api(options: argparse.Namespace, directory: Path, workers: int,
                results: dict[str, Measured]) -> None:
    """The API's phases, cheapest first, each added to `results` as soon as it is measured."""
    with running_stack(SETTINGS, log_dir=directory, api_workers=workers,
                       only_parts=options.parts or PARTS) as stack, \
            tempfile.TemporaryDirectory(prefix="bench-http-") as scratch:
        api = {"server": stack.roots()["api"], **stack.roots()}
        results["health"] = measure(options, stack.base_url + "/health/live", api, directory)
        concert = checks.create_concert(stack, 1, 1_000)  # its room: queue.SETTINGS
        results["poll"] = measure(options, stack.base_url + "/queue/tokens/me", api, directory,
                                  rotation=poll_rotation(stack, Path(scratch), concert.id))
        rate = issue_rate(results["poll"].wrk)
        issuers = issue_rotation(stack, Path(scratch), rate * options.duration, concert.id)
        warmup = issue_rotation(stack, Path(scratch), rate * max(1.0, options.warmup), concert.id,
                                "warmup") if options.warmup > 0 else None
        results["issue"] = measure(options, stack.base_url + "/queue/tokens", api, directory,
                                   rotation=issuers, warmup=warmup)


@contextmanager
def serving_reference(directory: Path) -> Iterator[tuple[str, int]]:
    """The reference app on granian, as DESIGN.md describes it; stopped on the way out."""
    port = free_port()
    argv = [sys.executable, "-m", "granian", "--interface", "asgi", "--workers", str(WORKERS),
            "--host", "127.0.0.1", "--port", str(port), "--no-ws", "--http", "1",
            "--log-level", "warning", "bench.reference_app:app"]
    with (directory / "reference.log").open("a") as log:
        server = subprocess.Popen(argv, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
        try:
            url = f"http://127.0.0.1:{port}"
            asyncio.run(_wait_answering(port, server))
            yield url, server.pid
        finally:
            server.terminate()
            try:
                server.wait(15)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()


async def _wait_answering(port: int, server: subprocess.Popen[bytes], patience: float = 30.0) -> None:
    deadline = time.monotonic() + patience
    while True:
        if server.poll() is not None:
            raise RuntimeError(f"the reference server exited with {server.returncode}; see reference.log")
        client = Client("127.0.0.1", port, timeout=2)
        try:
            status, _ = await client.request("GET", "/health")
            if status == 200:
                return
        except (OSError, HttpError):
            pass
        finally:
            client.close()
        if time.monotonic() > deadline:
            raise RuntimeError(f"the reference server does not answer after {patience:.0f} s")
        await asyncio.sleep(0.2)


def measure(options: argparse.Namespace, url: str, roots: dict[str, int], directory: Path, *,
            rotation: Rotation | None = None, warmup: Rotation | None = None) -> Measured:
    """An unmeasured wrk run (imports, pools, caches), then the measured one with the CPU of
    each process tree of `roots` read before and after ("server": the one loaded): CPU per
    request drifts far less than requests per second."""
    log = directory / "wrk.log"
    if options.warmup > 0:
        run_wrk(url, options.warmup, rotation=warmup or rotation, log=log)
    before, started = cpu_seconds(roots), time.monotonic()
    result = run_wrk(url, options.duration, rotation=rotation, log=log)
    after, seconds = cpu_seconds(roots), time.monotonic() - started
    used = after["server"] - before["server"]
    per_request = used / result.requests * 1000 if result.requests else math.nan
    cores = {name: used for name, used in cores_used(before, after, seconds).items() if name != "server"}
    return Measured(result, per_request, rotation.size if rotation else 0, cores)


def poll_rotation(stack: RunningStack, scratch: Path, concert_id: str) -> Rotation:
    """A waiting token for each of POLLERS users (issued before, not measured), polled in turn."""
    secret = stack.env["AUTH_JWT_SECRET"]
    who = prefix("hp")
    users = [User.new(secret, f"{who}-{n:06d}") for n in range(POLLERS)]
    asyncio.run(_issue_tokens(stack, users, concert_id))
    rows = ((user.authorization["Authorization"], user.queue_token) for user in users)
    return Rotation(write_users(scratch / "pollers.tsv", rows), "GET", "/queue/tokens/me", POLLERS)


async def _issue_tokens(stack: RunningStack, users: list[User], concert_id: str,
                        connections: int = 20) -> None:
    host, port = stack.host_port
    pending = iter(users)

    async def issue() -> None:
        api = BookingApi(Client(host, port, timeout=30), Recorder(), concert_id=concert_id)
        try:
            for user in pending:
                await api.issue_token(user)  # raises on anything but 200/201
        finally:
            api.client.close()

    await asyncio.gather(*(issue() for _ in range(connections)))


def issue_rate(poll: WrkResult) -> float:
    """Token issues per second to mint users for: if wrk runs out, users repeat and answer 200."""
    return min(max(poll.per_second * ISSUE_HEADROOM, ISSUE_RATE_FLOOR), ISSUE_RATE_CAP)


def issue_rotation(stack: RunningStack, scratch: Path, count: float, concert_id: str,
                   name: str = "issuers") -> Rotation:
    """Registered users (rows exist) whom the API has not seen yet, one per token issue."""
    count = min(max(1_000, math.ceil(count)), MAX_USERS)
    who = prefix("hi")
    checks.seed_users(stack, who, count)
    secret = stack.env["AUTH_JWT_SECRET"]
    users = write_users(scratch / f"{name}.tsv",
                        ((f"Bearer {mint(secret, f'{who}-{n:06d}')}", "") for n in range(count)))
    return Rotation(users, "POST", "/queue/tokens", count, orjson.dumps({"concert_id": concert_id}).decode())


def report(outcome: Outcome, results: dict[str, Measured], workers: int) -> None:
    reference = results["reference"].wrk.per_second
    for key, measured in results.items():
        phase = PHASES[key]
        result = measured.wrk
        ratio = result.per_second / reference if reference > 0 else math.nan
        if phase.bar is None:
            outcome.add(phase.label, f"{result.per_second:,.0f} req/s")
        else:
            outcome.add(phase.label, f"{result.per_second:,.0f} req/s = {ratio:.2f} x reference",
                        f"≥ {phase.bar} x reference", ratio >= phase.bar)
        outcome.add("  p50 / p99", f"{result.p50_ms:,.2f} / {result.p99_ms:,.2f} ms")
        answers = "  ".join(f"{status}: {n:,}" for status, n in result.answers.items()) or "-"
        if result.unanswered:
            answers += f"  unanswered: {result.unanswered:,}"
        if measured.users:
            answers += f"  ({measured.users:,} users)"
        outcome.add("  answers by status", answers, "all 2xx, none unanswered",
                    result.not_2xx == 0 and result.unanswered == 0)
        server = "reference" if phase.bar is None else "API"
        outcome.add(f"  {server} CPU per request", f"{measured.server_cpu_ms:.3f} ms")
        outcome.add("  wrk CPU", f"{result.wrk_cores:.2f} cores")
        if measured.cores:
            busy = sorted(measured.cores.items(), key=lambda kv: -kv[1])
            shown = ", ".join(f"{name} {cores:.2f}" for name, cores in busy if cores >= 0.01)
            outcome.add("  cores busy", shown)
        outcome.data[key] = result.figures() | {"ratio": ratio, "bar": phase.bar,
                                                "server_cpu_ms_per_request": measured.server_cpu_ms,
                                                "users": measured.users}
    outcome.data["reference_per_second"] = reference
    outcome.notes.append(f"wrk 2 threads, 100 connections; the reference, then the API with {workers} "
                         "workers (never both at once)")
