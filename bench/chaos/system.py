"""The whole system as separate processes, with handles to hurt each part.

Servers as `make run` starts them (workers/devstack/embedded.py), each the run's own
since it kills, freezes and restarts them: PostgreSQL (keeping every answered commit
through a SIGKILL), Redis and the Tansu broker. One provider simulator per provider.
Then every part as its own process, `replicas` of each (API, relay, saga, notifier,
token expiry; one queue worker), logging JSON lines to a file per process, so the
ledger can read what the workers did.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Coroutine
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, TypeVar

import httpx

from workers.common.kafka_worker import ASSIGNED
from workers.devstack.embedded import start_broker, start_postgres, start_redis, start_simulator
from workers.devstack.launcher import upgrade_database
from workers.devstack.processes import RunningServer, free_port, spawn_child
from workers.token_expiry.sweeper import STARTED as SWEEPER_READY

PYTHON = sys.executable
CODE_ROOT = Path(__file__).resolve().parents[2]
CONSUMER_READY = ASSIGNED.encode()
CONSUMERS = {"saga": "ticket-saga", "notifier": "notifier"}  # Kafka consumer kind -> its group's part
WORKERS = (*CONSUMERS, "token-expiry")  # the background workers killed by the faults
READY_LINES = {**dict.fromkeys(CONSUMERS, CONSUMER_READY), "token-expiry": SWEEPER_READY.encode()}
MODULES = {
    "api": "services.booking.entrypoints.api", "queue": "workers.queue",
    "relay": "workers.outbox_relay", "saga": "workers.saga", "notifier": "workers.notifier",
    "token-expiry": "workers.token_expiry",
}
KEYS = {"kakao": "chaos-kakao-key", "sms": "chaos-sms-key", "venue": None}
T = TypeVar("T")


class Part:
    """One process of the system: started, SIGKILLed and started again, its log kept."""

    def __init__(self, name: str, kind: str, env: dict[str, str], log_dir: Path) -> None:
        self.name, self.kind, self.env = name, kind, env
        self.log_path = log_dir / f"{name}.log"
        self.process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self._offset = 0
        self.kills = 0

    def start(self) -> None:
        if self.alive():
            return
        self._offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        self._log = self.log_path.open("ab")
        self.process = spawn_child([PYTHON, "-m", MODULES[self.kind]], stdout=self._log,
                                   env=self.env, cwd=CODE_ROOT)

    def kill(self) -> None:
        """SIGKILL: no batch finished, no offset committed, no goodbye."""
        self._signal(signal.SIGKILL)
        self.kills += 1

    def stop(self, timeout: float = 10.0) -> None:
        if self.process is not None and self.process.poll() is None:
            self._signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self._signal(signal.SIGKILL)
        if self._log is not None:
            self._log.close()
            self._log = None

    def _signal(self, sig: signal.Signals) -> None:
        assert self.process is not None
        try:
            os.killpg(self.process.pid, sig)
        except ProcessLookupError:
            return
        if sig == signal.SIGKILL:
            self.process.wait()
            if self._log is not None:
                self._log.close()
                self._log = None

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def ready(self) -> bool:
        """Consumers: said their partitions are assigned since the last start; the sweeper: said
        it started; other parts: running."""
        if self.kind not in READY_LINES:
            return self.alive()
        with self.log_path.open("rb") as log:
            log.seek(self._offset)
            return READY_LINES[self.kind] in log.read()

    def records(self) -> list[dict[str, Any]]:
        """Every JSON log record the process wrote, across its restarts."""
        found = []
        for line in self.log_path.read_bytes().splitlines():
            if line.startswith(b"{"):
                try:
                    found.append(json.loads(line))
                except ValueError:
                    continue  # a line cut short by SIGKILL
        return found


@dataclass
class System:
    replicas: int
    log_dir: Path
    env: dict[str, str] = field(default_factory=dict)
    parts: dict[str, Part] = field(default_factory=dict)
    servers: dict[str, RunningServer] = field(default_factory=dict)
    api_urls: list[str] = field(default_factory=list)
    _exit: ExitStack = field(default_factory=ExitStack)

    def start(self, ready_timeout: float = 120.0) -> None:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.env = self._servers_and_settings()
        upgrade_database(self.env["DATABASE_URL"])
        self._start_parts()
        self.wait_ready(ready_timeout)

    def _servers_and_settings(self) -> dict[str, str]:
        logs = self.log_dir / "servers"
        data = Path(tempfile.mkdtemp(prefix="booking-chaos-pg-"))
        data.chmod(0o755)
        self._exit.callback(shutil.rmtree, data, ignore_errors=True)
        postgres = self._keep(start_postgres(data / "data", durable=False, keep_commits_on_kill=True,
                                             log_dir=logs))
        redis, broker = self._keep(start_redis(log_dir=logs)), self._keep(start_broker(log_dir=logs))
        sims = {name: self._keep(start_simulator(name, PYTHON, key, log_dir=logs))
                for name, key in KEYS.items()}
        return settings_env(postgres.url, redis.url, broker.url,
                            {name: sim.url for name, sim in sims.items()})

    def _keep(self, server: RunningServer) -> RunningServer:
        self.servers[server.name.removesuffix(" simulator")] = server
        self._exit.callback(server.stop)
        return server

    def _start_parts(self) -> None:
        for kind in MODULES:
            for index in range(1 if kind == "queue" else self.replicas):
                name = f"{kind}-{index + 1}"
                env = {**self.env, "RELAY_NAME": f"chaos-{name}"}
                if kind == "api":
                    env["BOOKING_PORT"] = str(free_port())
                    self.api_urls.append(f"http://127.0.0.1:{env['BOOKING_PORT']}")
                part = self.parts[name] = Part(name, kind, env, self.log_dir)
                part.start()
                self._exit.callback(part.stop)

    def wait_ready(self, timeout: float = 90.0, names: list[str] | None = None) -> None:
        deadline = time.monotonic() + timeout
        for name in names or list(self.parts):
            part = self.parts[name]
            while not (part.ready() and (part.kind != "api" or self._api_answers(part))):
                if not part.alive() or time.monotonic() > deadline:
                    tail = part.log_path.read_text(errors="replace")[-2000:]
                    raise RuntimeError(f"{name} did not become ready:\n{tail}")
                time.sleep(0.2)

    def _api_answers(self, part: Part) -> bool:
        try:
            url = f"http://127.0.0.1:{part.env['BOOKING_PORT']}/health/live"
            return httpx.get(url, timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def of_kind(self, kind: str) -> list[Part]:
        return [part for part in self.parts.values() if part.kind == kind]

    def restart_server(self, name: str) -> None:
        """Stop and start on the same port: Redis and the broker come back empty."""
        self.servers[name].restart()

    def behave(self, provider: str, **behaviour: Any) -> None:
        url = f"{self.servers[provider].url}/_sim/behaviour"
        httpx.put(url, json=behaviour, timeout=5).raise_for_status()

    def simulator(self, provider: str, what: str) -> Any:
        return httpx.get(f"{self.servers[provider].url}/_sim/{what}", timeout=30).json()

    def command(self, *argv: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        """Run one of our CLIs (booking-dlq, booking-relay republish…) against this system."""
        return subprocess.run(
            [PYTHON, "-m", *argv], env=self.env, cwd=CODE_ROOT, capture_output=True,
            text=True, timeout=timeout, check=False)

    def stop(self) -> None:
        self._exit.close()


def run_private(work: Coroutine[Any, Any, T]) -> T:
    """Run `work` on a loop of its own: asyncio.run() would unset the thread's loop,
    which a caller's (pytest-asyncio's) may still need."""
    loop = asyncio.new_event_loop()
    try:
        return loop.run_until_complete(work)
    finally:
        loop.run_until_complete(loop.shutdown_default_executor())
        loop.close()


def settings_env(database_url: str, redis_url: str, kafka: str, sims: dict[str, str]) -> dict[str, str]:
    """Every part's environment: short timeouts and resets, so faults pass within the run."""
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("KAKAO_", "SMS_", "VENUE_", "CONSUMER_", "RELAY_", "QUEUE_"))}
    env.update({
        "PYTHONPATH": str(CODE_ROOT), "PYTHONUNBUFFERED": "1",
        "DATABASE_URL": database_url, "REDIS_URL": redis_url, "KAFKA_BOOTSTRAP_SERVERS": kafka,
        "KAFKA_ENABLE_IDEMPOTENCE": "false", "AUTH_JWT_SECRET": secrets.token_urlsafe(32),
        "LOG_FORMAT": "json", "LOG_LEVEL": "INFO", "BOOKING_HOST": "127.0.0.1",
        "QUEUE_NAMESPACE": "chaos-" + secrets.token_hex(3), "QUEUE_ADMIT_PER_SECOND": "500",
        "QUEUE_MAX_ACTIVE": "300",
        # A hold whose answer was lost (its API process killed) blocks its own customer,
        # who cannot know its id, until it runs out.
        "HOLD_TTL_SECONDS": "30",
        # Every customer comes from this machine's one address: per-address limits off.
        "RATE_LIMIT_ANON_PER_SECOND": "0",
        "CONSUMER_GROUP_PREFIX": "chaos", "CONSUMER_SESSION_TIMEOUT_SECONDS": "6",
        "CONSUMER_REBALANCE_TIMEOUT_SECONDS": "4", "CONSUMER_COMMIT_INTERVAL_SECONDS": "0.5",
        "CONSUMER_RETRY_BASE_SECONDS": "0.2",
        "VENUE_API_URL": sims["venue"], "VENUE_MAX_ATTEMPTS": "3", "VENUE_TIMEOUT_SECONDS": "2",
        "VENUE_RETRY_BASE_SECONDS": "0.05", "VENUE_BREAKER_RESET_SECONDS": "2",
        "KAKAO_API_URL": sims["kakao"], "KAKAO_API_KEY": KEYS["kakao"] or "",
        "KAKAO_SENDER_KEY": "chaos-sender", "KAKAO_TIMEOUT_SECONDS": "2",
        "KAKAO_RETRY_BASE_SECONDS": "0.05", "KAKAO_BREAKER_RESET_SECONDS": "2",
        "SMS_API_URL": sims["sms"], "SMS_API_KEY": KEYS["sms"] or "", "SMS_TIMEOUT_SECONDS": "2",
        "SMS_RETRY_BASE_SECONDS": "0.05", "SMS_BREAKER_RESET_SECONDS": "2",
        # Several replicas share this host: no fixed metrics ports.
        "METRICS_PORT": "0", "RELAY_METRICS_PORT": "0", "QUEUE_METRICS_PORT": "0", "SAGA_METRICS_PORT": "0",
        "NOTIFIER_METRICS_PORT": "0", "TOKEN_EXPIRY_METRICS_PORT": "0",
        "DLQ_REPLAY_GROUP": "chaos-dlq-replay",
    })
    return env
