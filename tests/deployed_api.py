"""`booking-api` as deployed: granian's workers in a subprocess, on ports of the test's own."""

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

from services.booking.config import Settings
from tests.support import JWT_SECRET, free_port

BOOKING_API = str(Path(sys.executable).parent / "booking-api")


def api_environment(settings: Settings, **overrides: str) -> dict[str, str]:
    """This process's environment with the test stack's settings, for a booking-api."""
    env = {**os.environ, "DATABASE_URL": str(settings.database_url),
           "REDIS_URL": str(settings.redis_url),
           "KAFKA_BOOTSTRAP_SERVERS": settings.kafka_bootstrap_servers,
           "AUTH_JWT_SECRET": JWT_SECRET, "QUEUE_NAMESPACE": settings.queue_namespace,
           "BOOKING_PORT": str(free_port()), "METRICS_PORT": str(free_port()), **overrides}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    return env


@contextlib.contextmanager
def deployed_api(settings: Settings, **overrides: str) -> Iterator[tuple[str, str, subprocess.Popen[bytes]]]:
    """A running booking-api: its URL, its metrics URL and its process, stopped on exit."""
    env = api_environment(settings, **overrides)
    api = subprocess.Popen([BOOKING_API], env=env)
    url = f"http://127.0.0.1:{env['BOOKING_PORT']}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert api.poll() is None, "booking-api exited"
            assert time.monotonic() < deadline, "booking-api did not start"
            try:
                if httpx.get(url + "/health/live", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.2)
        yield url, f"http://127.0.0.1:{env['METRICS_PORT']}", api
    finally:
        api.send_signal(signal.SIGTERM)
        api.wait(30)
