"""The local stack: embedded servers, their lifecycle, and the `make run` launcher."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import psutil
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from redis.asyncio import Redis
from sqlalchemy.engine import make_url

from services.common.settings_types import asyncpg_dsn
from tests.launcher_support import LauncherProcess
from workers.devstack.embedded import (
    ServerStartError,
    free_port,
    pg_bin,
    start_broker,
    start_postgres,
    start_redis,
)
from workers.devstack.launcher import run_stack
from workers.devstack.processes import Part
from workers.devstack.stackfiles import StackAlreadyRunning, stack_lock

pytestmark = pytest.mark.integration

REPO_ROOT = Path(__file__).resolve().parents[2]
SERVER_VARIABLES = ("DATABASE_URL", "REDIS_URL", "KAFKA_BOOTSTRAP_SERVERS", "AUTH_JWT_SECRET")
SLEEPER = Part("sleeper", (sys.executable, "-c", "import time; print('up', flush=True); time.sleep(600)"))


@pytest.fixture
def open_dir() -> Iterator[Path]:
    """A temp dir PostgreSQL's system user can enter (pytest's tmp_path is private to root)."""
    path = Path(tempfile.mkdtemp(prefix="booking-devstack-test-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


async def fetch_value(url: str, query: str) -> object:
    connection = await asyncpg.connect(asyncpg_dsn(url))
    try:
        return await connection.fetchval(query)
    finally:
        await connection.close()


def process_tree(pid: int) -> list[psutil.Process]:
    root = psutil.Process(pid)
    return [root, *root.children(recursive=True)]


def assert_all_gone(processes: list[psutil.Process], timeout: float = 20) -> None:
    _, alive = psutil.wait_procs(processes, timeout=timeout)
    # Orphans reparented to a PID 1 that does not reap them linger as zombies: dead all the same.
    alive = [p for p in alive if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    assert not alive, f"left running: {[(p.pid, p.name()) for p in alive]}"


async def test_session_servers_answer(postgres_url: str, redis_url: str) -> None:
    assert make_url(postgres_url).database.startswith("booking_test_")  # type: ignore[union-attr]
    assert await fetch_value(postgres_url, "SELECT current_database()") == make_url(postgres_url).database
    redis = Redis.from_url(redis_url)
    try:
        assert await redis.ping()
    finally:
        await redis.aclose()


async def test_broker_produce_consume_round_trip(kafka_bootstrap: str) -> None:
    topic = f"devstack-{uuid.uuid4().hex}"
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
    await producer.start()
    try:
        await producer.send_and_wait(topic, b"hello")
    finally:
        await producer.stop()
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=kafka_bootstrap, auto_offset_reset="earliest", group_id=topic
    )
    await consumer.start()
    try:
        message = await consumer.getone()
    finally:
        await consumer.stop()
    assert message.value == b"hello"


async def test_postgres_restart_keeps_data(open_dir: Path) -> None:
    with start_postgres(open_dir / "pg", durable=True, log_dir=open_dir / "logs") as server:
        await fetch_value(server.url, "CREATE TABLE kept AS SELECT 42 AS answer")
        server.restart()
        assert await fetch_value(server.url, "SELECT answer FROM kept") == 42
        assert await fetch_value(server.url, "SHOW max_connections") == "400"


def test_stop_leaves_no_child_processes(open_dir: Path) -> None:
    servers = [
        start_postgres(open_dir / "pg", durable=False, log_dir=open_dir),
        start_redis(log_dir=open_dir),
        start_broker(log_dir=open_dir),
    ]
    tree = [p for server in servers for p in process_tree(server.process.pid)]
    assert len(tree) > 3  # PostgreSQL's own workers are counted too
    for server in reversed(servers):
        server.stop()
    assert_all_gone(tree, timeout=5)
    assert pg_bin("pgbench").is_file()


def test_start_failure_is_one_line_naming_the_port() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(ServerStartError, match=f"port {port} is already in use"):
            start_redis(port)


def test_server_that_exits_is_reported_with_its_log(open_dir: Path) -> None:
    with pytest.raises(ServerStartError, match=r"postgres exited with code 1 .*shared_buffers"):
        start_postgres(open_dir / "pg", durable=False, log_dir=open_dir, shared_buffers="lots")


def test_second_lock_holder_is_refused(open_dir: Path) -> None:
    lock = open_dir / "stack.lock"
    with stack_lock(lock), pytest.raises(StackAlreadyRunning) as refused, stack_lock(lock):
        pass
    assert refused.value.pid == str(os.getpid())
    with stack_lock(lock):  # released when the holder leaves
        pass


def test_second_launcher_exits_without_touching_anything(
    open_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with stack_lock(open_dir / ".data" / "stack.lock"):
        status = run_stack(open_dir, {}, parts=[SLEEPER], ready_check=lambda: None)
    assert status == 1
    assert f"another 'make run' is already running (pid {os.getpid()})" in capsys.readouterr().out
    assert sorted(p.name for p in (open_dir / ".data").iterdir()) == ["stack.lock"]


def test_launcher_refuses_a_taken_booking_port(open_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        status = run_stack(open_dir, {"BOOKING_PORT": str(port)}, parts=[SLEEPER])
    assert status == 1
    assert f"BOOKING_PORT {port} on 127.0.0.1 is already in use" in capsys.readouterr().out


def child_pids() -> set[int]:
    return {p.pid for p in psutil.Process().children()}


def external_servers(postgres_url: str, redis_url: str, kafka_bootstrap: str) -> dict[str, str]:
    return {
        "DATABASE_URL": postgres_url,
        "REDIS_URL": redis_url,
        "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "AUTH_JWT_SECRET": "x" * 32,
        "BOOKING_PORT": str(free_port()),
    }


def test_launcher_stops_everything_when_a_part_dies(
    open_dir: Path,
    postgres_url: str,
    redis_url: str,
    kafka_bootstrap: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    crasher = Part("crasher", (sys.executable, "-c", "import time; time.sleep(1); exit(3)"))
    environ = external_servers(postgres_url, redis_url, kafka_bootstrap)
    servers_before = child_pids()  # the session's embedded servers, if any
    status = run_stack(
        open_dir, environ, parts=[SLEEPER, crasher], ready_check=lambda: "never", migrate=print
    )
    out = capsys.readouterr().out
    assert status == 1
    assert "part 'crasher' exited unexpectedly with code 3" in out
    assert postgres_url in out  # migrations were given the named database
    assert not (open_dir / ".data" / "stack.env").exists()
    assert child_pids() == servers_before


def test_launcher_names_failing_checks_when_never_ready(
    open_dir: Path,
    postgres_url: str,
    redis_url: str,
    kafka_bootstrap: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    environ = external_servers(postgres_url, redis_url, kafka_bootstrap)
    servers_before = child_pids()
    status = run_stack(
        open_dir,
        environ,
        parts=[SLEEPER],
        ready_check=lambda: "kafka: timed out",
        migrate=lambda url: None,
        ready_timeout=1,
    )
    assert status == 1
    assert "booking API not ready after 1 s: kafka: timed out" in capsys.readouterr().out
    assert child_pids() == servers_before


LAUNCHER_SCRIPT = """
import sys
from pathlib import Path
import os
from workers.devstack.launcher import run_stack
from workers.devstack.processes import Part
sleeper = Part("sleeper", (sys.executable, "-c", "import time; time.sleep(600)"))
raise SystemExit(run_stack(Path(sys.argv[1]), dict(os.environ), parts=[sleeper],
                           ready_check=lambda: None, migrate=lambda url: None, stop_timeout=5))
"""


class Launcher(LauncherProcess):
    """`make run` with a stand-in part, in a subprocess we can signal."""

    def __init__(self, project_root: Path) -> None:
        env = {k: v for k, v in os.environ.items() if k not in SERVER_VARIABLES}
        env["BOOKING_PORT"] = str(free_port())
        super().__init__([sys.executable, "-c", LAUNCHER_SCRIPT, str(project_root)], REPO_ROOT, env)


@pytest.fixture
def launcher(open_dir: Path) -> Iterator[Launcher]:
    started = Launcher(open_dir)
    yield started
    started.close()


def descendant_names(tree: list[psutil.Process]) -> set[str]:
    return {p.name() for p in tree}


def stack_database_url(data: Path) -> str:
    line = next(x for x in (data / "stack.env").read_text().splitlines() if x.startswith("DATA"))
    return line.split("=", 1)[1]


async def test_launcher_sigterm_stops_everything_and_keeps_state(launcher: Launcher, open_dir: Path) -> None:
    launcher.wait_for("booking API ready at http://127.0.0.1:")
    tree = process_tree(launcher.process.pid)
    assert {"postgres", "redis-server"} <= descendant_names(tree)
    assert any("tansu" in name for name in descendant_names(tree))
    data = open_dir / ".data"
    stack_env = (data / "stack.env").read_text()
    assert "DATABASE_URL=postgresql+asyncpg://postgres@127.0.0.1:" in stack_env
    assert (data / "jwt-secret").stat().st_mode & 0o777 == 0o600
    secret = (data / "jwt-secret").read_text().strip()
    assert f"AUTH_JWT_SECRET={secret}" in stack_env
    await fetch_value(stack_database_url(data), "CREATE TABLE kept AS SELECT 7 AS answer")

    launcher.process.send_signal(signal.SIGTERM)
    assert launcher.process.wait(timeout=30) == 0
    assert_all_gone(tree)
    assert not (data / "stack.env").exists()

    again = Launcher(open_dir)  # the secret and the database live on
    try:
        again.wait_for("booking API ready")
        assert f"AUTH_JWT_SECRET={secret}" in (data / "stack.env").read_text()
        assert await fetch_value(stack_database_url(data), "SELECT answer FROM kept") == 7
    finally:
        again.process.send_signal(signal.SIGINT)
        assert again.process.wait(timeout=30) == 0
        again.close()


def test_launcher_killed_leaves_no_orphans(launcher: Launcher) -> None:
    launcher.wait_for("booking API ready")
    tree = process_tree(launcher.process.pid)
    assert len(tree) >= 5
    launcher.process.kill()
    launcher.process.wait()
    assert_all_gone(tree)


def test_stop_of_a_frozen_postgres_leaves_no_backend(open_dir: Path) -> None:
    """A server that does not stop in time is SIGKILLed with every process under it:
    PostgreSQL's backends leave the postmaster's process group (setsid) as they start."""
    server = start_postgres(open_dir / "pg", durable=False, log_dir=open_dir)
    tree = process_tree(server.process.pid)
    assert len(tree) > 1
    for process in tree:
        process.suspend()  # frozen: SIGINT is not acted on, the stop times out
    server.stop(timeout=1)
    assert_all_gone(tree, timeout=5)


async def test_postgres_killed_and_frozen_whole_keeps_its_commits(open_dir: Path) -> None:
    server = start_postgres(open_dir / "pg", durable=False, keep_commits_on_kill=True, log_dir=open_dir)
    try:
        await fetch_value(server.url, "CREATE TABLE kept AS SELECT 42 AS answer")
        tree = process_tree(server.process.pid)
        server.send(signal.SIGSTOP)
        until_all(tree, psutil.STATUS_STOPPED)
        server.send(signal.SIGCONT)
        until_all(tree, psutil.STATUS_SLEEPING, psutil.STATUS_RUNNING)
        server.kill()
        assert_all_gone(tree, timeout=5)
        server.start()
        assert await fetch_value(server.url, "SELECT answer FROM kept") == 42
        assert "automatic recovery in progress" in server.log_path.read_text()
    finally:
        server.stop()


def until_all(processes: list[psutil.Process], *statuses: str, within: float = 10) -> None:
    """Wait until every living process is in one of `statuses`; the first (the root) must stay alive."""
    deadline = time.monotonic() + within
    while (found := statuses_of_the_living(processes)) - set(statuses):
        assert time.monotonic() < deadline, f"{found} after {within} s, not only {statuses}"
        time.sleep(0.01)
    assert processes[0].is_running(), f"{processes[0]} is gone"


def statuses_of_the_living(processes: list[psutil.Process]) -> set[str]:
    # A backend can be on its way out when the tree is listed (the connection that just closed);
    # it exits whatever signal comes, and its exit is not the server's, so it is left out.
    found = set()
    for process in processes:
        try:
            status = process.status()
        except psutil.NoSuchProcess:
            continue
        if status != psutil.STATUS_ZOMBIE:
            found.add(status)
    return found
