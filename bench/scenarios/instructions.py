"""Instructions: CPU instructions the API executes per request of each kind.

Counted by valgrind (callgrind) with instrumentation switched on only around each batch
of sequential requests: the count does not depend on what else the machine runs, so a
change of 1 % shows where throughput figures swing by 50 %. The API runs under
valgrind (some fifty times slower); nothing else is measured here.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import shutil
import subprocess
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

from bench import checks
from bench.api import BookingApi, User
from bench.httpclient import Client
from bench.report import Outcome
from bench.scenarios.common import OPEN_ROOMS, log_dir
from bench.stack import RunningStack, running_stack
from bench.stats import Recorder

REQUESTS = 100
SETTINGS = OPEN_ROOMS
T = TypeVar("T")
THREAD_TOTAL = re.compile(r"Th \d+\s+([\d,]+)")


def _callgrind(pid: int, *args: str) -> str:
    done = subprocess.run(["callgrind_control", *args, str(pid)], capture_output=True, text=True,
                          check=False)
    return done.stdout


async def _count(pid: int, call: Callable[[T], Awaitable[object]], items: list[T]) -> float:
    """Millions of instructions per request over one batch, every thread summed."""
    _callgrind(pid, "-i", "on")
    _callgrind(pid, "-z")
    for item in items:
        await call(item)
    totals = THREAD_TOTAL.findall(_callgrind(pid, "-e", "Ir"))
    _callgrind(pid, "-i", "off")
    return sum(int(value.replace(",", "")) for value in totals) / len(items) / 1e6


async def _measure(stack: RunningStack, pid: int, concert: checks.BenchConcert) -> dict[str, float]:
    schedule_id = concert.schedules[0]
    host, port = stack.host_port
    api = BookingApi(Client(host, port, timeout=300), Recorder(), poll_seconds=0.2, concert_id=concert.id)
    secret, tag = stack.env["AUTH_JWT_SECRET"], "i" + uuid.uuid4().hex[:6]
    fresh = [User.new(secret, f"{tag}-{n:05d}") for n in range(REQUESTS)]
    known = [User.new(secret, f"{tag}k-{n:06d}") for n in range(REQUESTS)]
    await asyncio.to_thread(checks.seed_users, stack, tag + "k", REQUESTS, 0)
    for n, user in enumerate([User.new(secret, f"{tag}w-{n}") for n in range(20)]):
        await api.charge(user, 100_000)  # every path once, uncounted: imports, caches, pools
        await api.wait_active(user)
        _, warm = await api.hold(user, schedule_id, 2 * REQUESTS + n + 1)
        await api.pay(user, warm["id"])
    figures = {
        "queue token, user known to the database": await _count(pid, api.issue_token, known),
        "queue token, new user": await _count(pid, api.issue_token, fresh),
    }
    await asyncio.sleep(0.5)  # admitted by now
    figures["queue poll"] = await _count(pid, api.poll_token, fresh)
    for user in fresh:
        await api.charge(user, 100_000)

    async def charge(user: User) -> None:
        await api.charge(user, 1_000)

    held: dict[str, str] = {}

    async def hold(seat: int) -> None:
        user = fresh[seat - 1]
        status, body = await api.hold(user, schedule_id, seat)
        assert status == 201, body
        held[user.user_id] = body["id"]

    async def pay(user: User) -> None:
        status, body = await api.pay(user, held[user.user_id])
        assert status == 201, body

    figures["points charge"] = await _count(pid, charge, fresh)
    figures["hold"] = await _count(pid, hold, list(range(1, REQUESTS + 1)))
    figures["pay"] = await _count(pid, pay, fresh)
    api.client.close()
    return figures


def run(options: argparse.Namespace) -> Outcome:
    outcome = Outcome("instructions")
    if shutil.which("valgrind") is None or shutil.which("callgrind_control") is None:
        outcome.add("skipped", "valgrind is not installed (apt-get install valgrind)")
        return outcome
    wrapper = ("valgrind", "--tool=callgrind", "--instr-atstart=no",
               f"--callgrind-out-file={options.log_dir / 'callgrind.out.%p'}")
    with running_stack(SETTINGS, log_dir=log_dir(options, "instructions"), only_parts=["api", "queue"],
                       # One API process, the one valgrind runs: uvicorn's workers are children.
                       api_workers=1, api_wrapper=wrapper, ready_timeout=300) as stack:
        pid = stack.roots()["api"]
        concert = checks.create_concert(stack, 3 * REQUESTS + 100, 1_000)
        figures = asyncio.run(_measure(stack, pid, concert))
    for kind, millions in figures.items():
        # Even the lightest request runs over a million instructions: near zero means
        # valgrind watched a process that did not serve the requests.
        outcome.add(f"{kind}: instructions per request", f"{millions:.2f} M", "> 0.1 M", millions > 0.1)
    flow = sum(figures[k] for k in ("queue token, new user", "queue poll", "hold", "pay"))
    outcome.add("payment flow (token + poll + hold + pay)", f"{flow:.2f} M")
    outcome.data = figures | {"payment flow": flow}
    for stale in Path(options.log_dir).glob("callgrind.out.*"):
        stale.unlink()
    return outcome
