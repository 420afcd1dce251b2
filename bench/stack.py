"""The system under test, started the way `make run` starts it.

The launcher's own `Stack` resolves the servers (embedded PostgreSQL, Redis and
broker unless DATABASE_URL, REDIS_URL or KAFKA_BOOTSTRAP_SERVERS name others) and
runs the parts of `DEFAULT_PARTS` as child processes. The bench adds only what a
measurement needs: a scratch database and queue namespace of its own, settings per
scenario, part output in a log file instead of the terminal, and the process tree
for memory readings.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
import psutil
from rich.console import Console
from sqlalchemy.engine import make_url

from workers.devstack import launcher
from workers.devstack.processes import Part, free_port

# Each part (the API too) serves metrics on a fixed default port, which a running `make run` (or
# another bench) may hold; nothing scrapes them here, so they are off (port 0). A free
# port picked in advance was no answer: the generator's thousands of client sockets
# draw from the same ephemeral range, and one took a worker's port before it bound.
METRICS_PORTS = ("METRICS_PORT", "QUEUE_METRICS_PORT", "RELAY_METRICS_PORT", "SAGA_METRICS_PORT",
                 "NOTIFIER_METRICS_PORT", "TOKEN_EXPIRY_METRICS_PORT")


def plain_dsn(url: str) -> str:
    """An asyncpg/libpq DSN for a SQLAlchemy `postgresql+asyncpg://` URL."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


async def execute(url: str, *statements: str) -> None:
    connection = await asyncpg.connect(plain_dsn(url))
    try:
        for statement in statements:
            await connection.execute(statement)
    finally:
        await connection.close()


@dataclass
class RunningStack:
    """What a scenario needs to know about the system it loads."""

    base_url: str
    env: dict[str, str]
    server_url: str  # the PostgreSQL server's maintenance database, for pgbench
    database_url: str
    log_path: Path
    stack: launcher.Stack
    part_names: list[str] = field(default_factory=list)

    @property
    def host_port(self) -> tuple[str, int]:
        return self.env["BOOKING_HOST"], int(self.env["BOOKING_PORT"])

    def roots(self) -> dict[str, int]:
        """The pid of each part and server; their children are found when needed."""
        found = {part.name: part.process.pid for part in self.stack.parts}
        return found | {server.name: server.process.pid for server in self.stack.servers}

    def processes(self) -> dict[str, psutil.Process]:
        """Every process of the system by a readable name: parts, their workers, servers."""
        found: dict[str, psutil.Process] = {}
        for part in self.stack.parts:
            _add_tree(found, part.name, part.process.pid)
        for server in self.stack.servers:
            _add_tree(found, server.name, server.process.pid)
        return found


def _add_tree(found: dict[str, psutil.Process], name: str, pid: int) -> None:
    try:
        root = psutil.Process(pid)
        children = root.children(recursive=True)
    except psutil.NoSuchProcess:
        return
    found[name] = root
    for index, child in enumerate(children, 1):
        try:
            label = _child_label(child) or f"child {index}"
        except psutil.Error:
            continue
        found[f"{name}/{label}"] = child


def _child_label(process: psutil.Process) -> str | None:
    command = process.cmdline()
    if command and command[0].startswith("postgres:"):
        return " ".join(command)[len("postgres: "):][:40]
    if "multiprocessing" in " ".join(command):
        return f"worker {process.pid}"
    return None


def bench_parts(
    api_workers: int | None, only: Sequence[str] | None = None, api_wrapper: Sequence[str] = ()
) -> list[Part]:
    """DEFAULT_PARTS (or the named ones), with `--workers N` for the API when asked and
    the API run under a wrapper (valgrind) when given."""
    parts = []
    for part in launcher.DEFAULT_PARTS:
        if only is not None and part.name not in only:
            continue
        if part.name == "api":
            workers = ("--workers", str(api_workers)) if api_workers else ()
            part = Part(part.name, (*api_wrapper, *part.argv, *workers))
        parts.append(part)
    return parts


@contextmanager
def running_stack(
    settings: Mapping[str, str],
    *,
    api_workers: int | None = None,
    only_parts: Sequence[str] | None = None,
    api_wrapper: Sequence[str] = (),
    log_dir: Path,
    ready_timeout: float = 120.0,
) -> Iterator[RunningStack]:
    """Start servers, a scratch database, migrations and the parts; stop all of it after."""
    # Every simulated user comes from this machine's one address: per-address limits off
    # (per-user limits stay, as in production).
    environ = {**os.environ, **dict.fromkeys(METRICS_PORTS, "0"), "RATE_LIMIT_ANON_PER_SECOND": "0",
               **settings}
    for name in ("BOOKING_PORT", "BOOKING_HOST"):
        environ.pop(name, None)
    port = free_port()
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / "stack.log"
    # Embedded PostgreSQL runs as another user when we are root: the directory must be
    # enterable by it, which pytest's or mkdtemp's private directories are not.
    data_dir = Path(tempfile.mkdtemp(prefix="booking-bench-"))
    data_dir.chmod(0o755)
    with log_path.open("a") as log:
        console = Console(file=log, width=200, highlight=False, color_system=None)
        config = launcher.StackConfig(environ, data_dir / ".data", "127.0.0.1", port)
        stack = launcher.Stack(config, console)
        database = server_url = ""
        try:
            resolved = stack.resolve()
            server_url = resolved["DATABASE_URL"]
            database = f"bench_{secrets.token_hex(4)}"
            asyncio.run(execute(server_url, f'CREATE DATABASE "{database}"'))
            database_url = make_url(server_url).set(database=database).render_as_string(
                hide_password=False)
            resolved["DATABASE_URL"] = database_url
            resolved["QUEUE_NAMESPACE"] = "bench-" + secrets.token_hex(4)
            launcher.upgrade_database(database_url)
            parts = bench_parts(api_workers, only_parts, api_wrapper)
            stack.start_parts(parts, resolved)
            stack.wait_ready(launcher.http_ready_check("127.0.0.1", port), ready_timeout)
            yield RunningStack(
                base_url=f"http://127.0.0.1:{port}", env={**environ, **resolved},
                server_url=server_url, database_url=database_url, log_path=log_path,
                stack=stack, part_names=[part.name for part in parts],
            )
        finally:
            stack.shutdown(10.0)
            if database and environ.get("DATABASE_URL"):
                # Only a server we did not start outlives the run; leave it as we found it.
                asyncio.run(execute(server_url, f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'))
            if (server_logs := data_dir / ".data" / "logs").is_dir():
                shutil.copytree(server_logs, log_dir / "servers", dirs_exist_ok=True)
            shutil.rmtree(data_dir, ignore_errors=True)

