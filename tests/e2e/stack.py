"""The whole system for end-to-end tests: API, relay, consumer workers, provider simulators.

The API, the queue worker and the relay run in the test's event loop; the three
consumer workers are real subprocesses (so they can be SIGKILLed); the providers are
simulators on real sockets. Everything uses a private database, so the relay and
the workers see only what these tests do.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from services.booking.config import Settings
from tests.support import Booking, free_port, sql
from workers.common.kafka_worker import ASSIGNED
from workers.devstack.simulators.server import SimulatorServer
from workers.token_expiry.sweeper import STARTED

REPO_ROOT = Path(__file__).resolve().parents[2]
KAKAO_KEY = "kakao-test-key"
SMS_KEY = "sms-test-key"
# Short timeouts and resets keep outage tests quick; breaker thresholds are the defaults.
KAKAO_TIMEOUT = 2.0
BREAKER_FAIL_MAX = 5
BREAKER_RESET = 2.0
# The notifier serves its metrics here; the other workers serve none.
NOTIFIER_METRICS_PORT = free_port()
VENUE_MAX_ATTEMPTS = 3
# Messages each worker handles at once (the default).
CONSUMER_CONCURRENCY = 8
WORKERS = {"saga": "workers.saga", "notifier": "workers.notifier", "token-expiry": "workers.token_expiry"}
# A consumer is ready once its group gave it partitions; the sweeper once it started.
READY_LINES = {"token-expiry": STARTED.encode()}


class WorkerProcess:
    """One `python -m workers.<part>` subprocess, logging to its own file."""

    def __init__(self, name: str, env: dict[str, str], log_dir: Path) -> None:
        self.name = name
        self.env = env
        self.log = log_dir / f"{name}.log"
        self.process: subprocess.Popen[bytes] | None = None
        self._log_offset = 0

    def start(self) -> None:
        self._log_offset = self.log.stat().st_size if self.log.exists() else 0
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", WORKERS[self.name]], cwd=REPO_ROOT, env=self.env,
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            )

    async def wait_ready(self, within: float = 60.0) -> None:
        """Wait for the worker's line that it is ready (READY_LINES)."""
        deadline = time.monotonic() + within
        while True:
            with self.log.open("rb") as log:
                log.seek(self._log_offset)
                if READY_LINES.get(self.name, ASSIGNED.encode()) in log.read():
                    return
            assert self.process is not None and self.process.poll() is None, self.tail()
            assert time.monotonic() < deadline, f"{self.name} not ready: {self.tail()}"
            await asyncio.sleep(0.1)

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.kill()

    def tail(self, lines: int = 40) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return "\n".join(text.splitlines()[-lines:])


def worker_env(settings: Settings, database_url: str, kafka: str, group_prefix: str,
               sims: dict[str, SimulatorServer]) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("KAKAO_", "SMS_", "VENUE_", "CONSUMER_"))}
    env.update({
        "DATABASE_URL": database_url, "REDIS_URL": str(settings.redis_url),
        "KAFKA_BOOTSTRAP_SERVERS": kafka, "KAFKA_ENABLE_IDEMPOTENCE": "false",
        "QUEUE_NAMESPACE": settings.queue_namespace, "CONSUMER_GROUP_PREFIX": group_prefix,
        "CONSUMER_SESSION_TIMEOUT_SECONDS": "6", "CONSUMER_REBALANCE_TIMEOUT_SECONDS": "4",
        "CONSUMER_COMMIT_INTERVAL_SECONDS": "0.5", "CONSUMER_RETRY_BASE_SECONDS": "0.2",
        "CONSUMER_CONCURRENCY": str(CONSUMER_CONCURRENCY),
        "VENUE_API_URL": sims["venue"].base_url, "VENUE_MAX_ATTEMPTS": str(VENUE_MAX_ATTEMPTS),
        "VENUE_TIMEOUT_SECONDS": "2", "VENUE_RETRY_BASE_SECONDS": "0.05",
        "VENUE_BREAKER_RESET_SECONDS": str(BREAKER_RESET),
        "KAKAO_API_URL": sims["kakao"].base_url, "KAKAO_API_KEY": KAKAO_KEY,
        "KAKAO_SENDER_KEY": "sender-test", "KAKAO_TIMEOUT_SECONDS": str(KAKAO_TIMEOUT),
        "KAKAO_RETRY_BASE_SECONDS": "0.05", "KAKAO_BREAKER_FAIL_MAX": str(BREAKER_FAIL_MAX),
        "KAKAO_BREAKER_RESET_SECONDS": str(BREAKER_RESET),
        "SMS_API_URL": sims["sms"].base_url, "SMS_API_KEY": SMS_KEY, "SMS_TIMEOUT_SECONDS": "2",
        "SMS_RETRY_BASE_SECONDS": "0.05", "SMS_BREAKER_RESET_SECONDS": str(BREAKER_RESET),
        "SAGA_METRICS_PORT": "0", "TOKEN_EXPIRY_METRICS_PORT": "0",
        "NOTIFIER_METRICS_PORT": str(NOTIFIER_METRICS_PORT),
        "LOG_LEVEL": "INFO", "LOG_FORMAT": "json",
    })
    return env


@dataclass
class Stack:
    booking: Booking
    settings: Settings
    database_url: str
    kafka: str
    group_prefix: str
    sims: dict[str, SimulatorServer]
    workers: dict[str, WorkerProcess]
    dlq_env: dict[str, str] = field(default_factory=dict)

    @property
    def kakao(self) -> SimulatorServer:
        return self.sims["kakao"]

    @property
    def sms(self) -> SimulatorServer:
        return self.sims["sms"]

    @property
    def venue(self) -> SimulatorServer:
        return self.sims["venue"]

    def group(self, part: str) -> str:
        return f"{self.group_prefix}-{part}"

    async def sql(self, statement: str, **params: Any) -> list[dict[str, Any]]:
        return await sql(self.settings, statement, **params)

    async def restart(self, *names: str) -> None:
        for name in names:
            self.workers[name].start()
        await asyncio.gather(*(self.workers[name].wait_ready() for name in names))
