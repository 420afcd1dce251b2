"""`make run`: embedded servers for what the environment does not name, migrations,
then every long-running part as a child process, supervised until Ctrl-C."""

from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

from rich.console import Console
from rich.text import Text

from services.common.stack_env import DATA_DIR, STACK_LOCK, stack_settings
from workers.devstack.embedded import start_broker, start_postgres, start_redis, start_simulator
from workers.devstack.processes import (
    Part,
    RunningPart,
    RunningServer,
    ServerStartError,
    log_tail,
    port_is_free,
)
from workers.devstack.stackfiles import (
    StackAlreadyRunning,
    remove_stack_env,
    resolve_jwt_secret,
    stack_lock,
    write_stack_env,
)

PYTHON = sys.executable
CODE_ROOT = Path(__file__).resolve().parents[2]  # holds the `services` and `workers` packages

# Every long-running part of `make run`; adding one is adding a line.
DEFAULT_PARTS: tuple[Part, ...] = (
    Part("api", (PYTHON, "-m", "services.booking.entrypoints.api")),
    Part("queue", (PYTHON, "-m", "workers.queue")),
    Part("relay", (PYTHON, "-m", "workers.outbox_relay")),
    Part("saga", (PYTHON, "-m", "workers.saga")),
    Part("notifier", (PYTHON, "-m", "workers.notifier")),
    Part("token-expiry", (PYTHON, "-m", "workers.token_expiry")),
)

# Provider URL variable -> (simulator, key variables and the local values they get).
SIMULATED_PROVIDERS: dict[str, tuple[str, dict[str, str]]] = {
    "KAKAO_API_URL": ("kakao", {"KAKAO_API_KEY": "devstack-kakao-key",
                                "KAKAO_SENDER_KEY": "devstack-sender"}),
    "SMS_API_URL": ("sms", {"SMS_API_KEY": "devstack-sms-key"}),
    "VENUE_API_URL": ("venue", {}),
}

# Returns None when the system is ready, else what is still failing.
ReadyCheck = Callable[[], str | None]
Migrate = Callable[[str], None]


class StackError(Exception):
    """The stack cannot run; the message is the one line the operator sees."""


class StopRequested(BaseException):
    """SIGINT/SIGTERM arrived; a BaseException so that `except Exception` lets it pass."""


@dataclass(frozen=True)
class StackConfig:
    environ: Mapping[str, str]
    data_dir: Path
    host: str
    port: int
    # Every line of every part on the terminal, not only warnings and errors.
    verbose: bool = False

    @property
    def log_dir(self) -> Path:
        return self.data_dir / "logs"


def http_ready_check(host: str, port: int) -> ReadyCheck:
    """Ask GET /health/ready; report the checks that are not "ok" until it answers 200."""
    import httpx

    url = f"http://{host}:{port}/health/ready"

    def check() -> str | None:
        try:
            response = httpx.get(url, timeout=2.0)
        except httpx.HTTPError as error:
            return f"{url} does not answer ({type(error).__name__})"
        if response.status_code == 200:
            return None
        try:
            checks = response.json().get("checks", {})
            failing = [f"{name}: {state}" for name, state in checks.items() if state != "ok"]
        except (ValueError, AttributeError):
            failing = []
        return ", ".join(failing) or f"{url} answered {response.status_code}"

    return check


def upgrade_database(database_url: str) -> None:
    # Imported late: the launcher must start (and say why it stops) without the service.
    from services.booking.adapters.migrate import upgrade_to_head

    upgrade_to_head(database_url)


def _booking_port(environ: Mapping[str, str]) -> tuple[str, int]:
    host = environ.get("BOOKING_HOST", "127.0.0.1")
    raw = environ.get("BOOKING_PORT", "8000")
    if not raw.isdigit() or not 0 < int(raw) < 65536:
        raise StackError(f"BOOKING_PORT must be a port number, got {raw!r}")
    if not port_is_free(host, int(raw)):
        raise StackError(
            f"BOOKING_PORT {raw} on {host} is already in use by another process;"
            " stop it or set BOOKING_PORT to a free port"
        )
    return host, int(raw)


class Stack:
    """The servers and parts of one `make run`, stopped in reverse order of start."""

    def __init__(self, config: StackConfig, console: Console) -> None:
        self.config = config
        self.console = console
        self.servers: list[RunningServer] = []
        self.parts: list[RunningPart] = []

    def say(self, message: str, style: str = "bold") -> None:
        # Text, not markup: messages quote logs and errors that may hold [brackets].
        self.console.print(Text.assemble(("stack   | ", style), message), soft_wrap=True)

    def resolve(self) -> dict[str, str]:
        """Name every server and secret, starting embedded servers for the unnamed ones."""
        env, data, logs = self.config.environ, self.config.data_dir, self.config.log_dir
        starters: dict[str, Callable[[], RunningServer]] = {
            "DATABASE_URL": lambda: start_postgres(data / "postgres", log_dir=logs),
            "REDIS_URL": lambda: start_redis(log_dir=logs),
            "KAFKA_BOOTSTRAP_SERVERS": lambda: start_broker(log_dir=logs),
        }
        resolved: dict[str, str] = {}
        for key, start in starters.items():
            if env.get(key):
                resolved[key] = env[key]
                continue
            server = start()
            self.servers.append(server)
            resolved[key] = server.url
            self.say(f"embedded {server.name} at {server.url} (log: {server.log_path})")
        if not env.get("KAFKA_BOOTSTRAP_SERVERS"):
            # The embedded broker lacks InitProducerId; real Kafka keeps the default (on).
            resolved["KAFKA_ENABLE_IDEMPOTENCE"] = "false"
        resolved.update(self._simulated_providers(logs))
        resolved["AUTH_JWT_SECRET"] = env.get("AUTH_JWT_SECRET") or resolve_jwt_secret(data)
        resolved["BOOKING_HOST"] = self.config.host
        resolved["BOOKING_PORT"] = str(self.config.port)
        return resolved

    def _simulated_providers(self, logs: Path) -> dict[str, str]:
        """Start a simulator for each provider whose URL the environment does not name."""
        env, resolved = self.config.environ, {}
        for url_key, (provider, keys) in SIMULATED_PROVIDERS.items():
            if env.get(url_key):
                continue
            values = {name: env.get(name) or default for name, default in keys.items()}
            api_key = next((v for k, v in values.items() if k.endswith("_API_KEY")), None)
            server = start_simulator(provider, PYTHON, api_key, log_dir=logs)
            self.servers.append(server)
            resolved[url_key] = server.url
            resolved.update(values)
            self.say(f"{provider} simulator at {server.url} (calls: {server.url}/_sim/calls)")
        return resolved

    def start_parts(self, parts: Sequence[Part], resolved: Mapping[str, str]) -> None:
        env = {**self.config.environ, **resolved, "PYTHONUNBUFFERED": "1"}
        # Parts import the same code as the launcher, installed or not, from any cwd.
        env["PYTHONPATH"] = os.pathsep.join(
            filter(None, [str(CODE_ROOT), self.config.environ.get("PYTHONPATH")])
        )
        cwd = self.config.data_dir.parent
        for index, part in enumerate(parts):
            running = RunningPart.start(part, env, cwd, self.console, index,
                                        log_dir=self.config.log_dir, verbose=self.config.verbose)
            self.parts.append(running)

    def check_parts_alive(self) -> None:
        for part in self.parts:
            code = part.process.poll()
            if code is not None:
                raise StackError(f"part '{part.name}' exited unexpectedly with code {code};"
                                 f" {part.log_path} ends with: {log_tail(part.log_path)}")

    def wait_ready(self, ready_check: ReadyCheck, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while (failing := ready_check()) is not None:
            self.check_parts_alive()
            if time.monotonic() > deadline:
                raise StackError(f"booking API not ready after {timeout:.0f} s: {failing}")
            time.sleep(0.5)

    def supervise(self) -> None:
        while True:
            self.check_parts_alive()
            time.sleep(0.3)

    def shutdown(self, timeout: float) -> None:
        for part in reversed(self.parts):
            part.stop(timeout)
        for server in reversed(self.servers):
            server.stop(timeout)


def _raise_stop(signum: int, frame: FrameType | None) -> None:
    raise StopRequested(signal.Signals(signum).name)


@contextmanager
def _stop_on_signals() -> Iterator[None]:
    previous = {sig: signal.signal(sig, _raise_stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _run(
    stack: Stack,
    parts: Sequence[Part],
    ready_check: ReadyCheck | None,
    migrate: Migrate,
    ready_timeout: float,
) -> None:
    resolved = stack.resolve()
    write_stack_env(stack.config.data_dir, stack_settings(stack.config.environ, resolved))
    try:
        migrate(resolved["DATABASE_URL"])
    except Exception as error:
        raise StackError(f"migrations failed: {type(error).__name__}: {error}") from error
    stack.start_parts(parts, resolved)
    host, port = stack.config.host, stack.config.port
    stack.wait_ready(ready_check or http_ready_check(host, port), ready_timeout)
    api_log = next((f"; log: {part.log_path}" for part in stack.parts if part.name == "api"), "")
    stack.say(f"booking API ready at http://{host}:{port}  (docs: /docs{api_log})", "bold green")
    stack.supervise()


def run_stack(
    project_root: Path,
    environ: Mapping[str, str],
    *,
    parts: Sequence[Part] = DEFAULT_PARTS,
    ready_check: ReadyCheck | None = None,
    migrate: Migrate = upgrade_database,
    ready_timeout: float = 120.0,
    stop_timeout: float = 10.0,
    console: Console | None = None,
    verbose: bool = False,
) -> int:
    """Run the whole system in the foreground until SIGINT/SIGTERM; return the exit status.

    Must run in the main thread: children die with the thread that started them.
    """
    console = console or Console(highlight=False)
    data_dir = project_root / DATA_DIR
    try:
        with stack_lock(data_dir / STACK_LOCK):
            host, port = _booking_port(environ)
            stack = Stack(StackConfig(environ, data_dir, host, port, verbose), console)
            return _run_until_stopped(stack, parts, ready_check, migrate, ready_timeout, stop_timeout)
    except StackAlreadyRunning as error:
        console.print(Text(str(error)), soft_wrap=True)
        return 1
    except (StackError, ServerStartError) as error:
        console.print(Text.assemble(("error: ", "bold red"), str(error)), soft_wrap=True)
        return 1


def _run_until_stopped(
    stack: Stack,
    parts: Sequence[Part],
    ready_check: ReadyCheck | None,
    migrate: Migrate,
    ready_timeout: float,
    stop_timeout: float,
) -> int:
    status = 0
    with _stop_on_signals():
        try:
            _run(stack, parts, ready_check, migrate, ready_timeout)
        except StopRequested as stop:
            stack.say(f"{stop.args[0]} received, stopping")
        except (StackError, ServerStartError) as error:
            stack.say(f"error: {error}; stopping everything", "bold red")
            status = 1
        finally:
            # A second Ctrl-C must not cut the orderly stop short and leave orphans.
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            stack.shutdown(stop_timeout)
            remove_stack_env(stack.config.data_dir)
    stack.say("stopped")
    return status
