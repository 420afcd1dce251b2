"""Calibrate: what the load generator costs per request, beside aiohttp and httpx, and
what the workers' provider call costs."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time

from bench.report import ROOT, Outcome
from workers.devstack.processes import free_port

REQUESTS = {"raw": 50_000, "aiohttp": 20_000, "httpx": 5_000, "provider": 20_000}
NAMES = {"raw": "bench.httpclient (used)", "provider": "workers' ResilientCaller.post_json"}


def run(options: argparse.Namespace) -> Outcome:
    outcome = Outcome("calibrate")
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "bench.calibration", "server", str(port)],
                              cwd=ROOT)
    try:
        time.sleep(1.0)
        for kind, count in REQUESTS.items():
            done = subprocess.run(
                [sys.executable, "-m", "bench.calibration", "client", kind, str(port), str(count)],
                cwd=ROOT, capture_output=True, text=True, check=True,
            )
            figures = json.loads(done.stdout)
            name = NAMES.get(kind, kind)
            outcome.add(f"{name}: client CPU per request",
                        f"{figures['cpu_us_per_request']:,.0f} µs "
                        f"({figures['requests_per_second']:,.0f} req/s, 50 connections)")
            outcome.data[kind] = figures
    finally:
        server.terminate()
        server.wait(10)
    outcome.notes.append("against a server that answers at once: the client's cost alone")
    return outcome
