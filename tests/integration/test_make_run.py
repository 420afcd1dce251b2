"""The real `make run` (booking-stack, every part) in a project directory: a short start-up
on the terminal with each part's log in .data/logs, and the package's commands run in that
directory finding the stack's settings by themselves."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import jwt
import pytest

from services.common.logging import READY
from tests.launcher_support import LauncherProcess
from workers.devstack.processes import free_port

pytestmark = pytest.mark.integration

BIN = Path(sys.executable).parent
PARTS = ("api", "queue", "relay", "saga", "notifier", "token-expiry")
# Nothing scrapes these here, and their fixed defaults may be taken by another stack.
METRICS_PORTS = ("METRICS_PORT", "QUEUE_METRICS_PORT", "RELAY_METRICS_PORT", "SAGA_METRICS_PORT",
                 "NOTIFIER_METRICS_PORT", "TOKEN_EXPIRY_METRICS_PORT")
AUDIENCE = "booking-make-run-test"
MAX_LIFETIME = 3600  # shorter than booking-token's default of 12 hours


def bare_environment(**extra: str) -> dict[str, str]:
    """What a new shell has: no setting of the system, nothing sourced."""
    kept = {name: value for name, value in os.environ.items() if name in ("PATH", "HOME", "LANG")}
    return {**kept, **extra}


@dataclass
class RunningStack:
    project: Path
    launcher: LauncherProcess
    base_url: str
    start_up: list[str]  # the launcher's lines up to "booking API ready"

    def command(self, *argv: str, **env: str) -> subprocess.CompletedProcess[str]:
        """Run an installed command in the project directory, from a bare environment."""
        return subprocess.run([str(BIN / argv[0]), *argv[1:]], cwd=self.project,
                              env=bare_environment(**env), capture_output=True, text=True,
                              timeout=120, check=False)


@pytest.fixture(scope="module")
def stack() -> Iterator[RunningStack]:
    # Not pytest's tmp_path: embedded PostgreSQL runs as another user, who must enter it.
    project = Path(tempfile.mkdtemp(prefix="booking-make-run-test-"))
    project.chmod(0o755)
    port = free_port()
    env = bare_environment(BOOKING_PORT=str(port), AUTH_JWT_AUDIENCE=AUDIENCE,
                           AUTH_JWT_MAX_LIFETIME_SECONDS=str(MAX_LIFETIME),
                           **dict.fromkeys(METRICS_PORTS, "0"))
    launcher = LauncherProcess([str(BIN / "booking-stack")], project, env)
    try:
        launcher.wait_for("booking API ready", timeout=240)
        yield RunningStack(project, launcher, f"http://127.0.0.1:{port}", list(launcher.output))
        launcher.process.send_signal(signal.SIGINT)
        assert launcher.process.wait(timeout=60) == 0
    finally:
        launcher.close()
        shutil.rmtree(project, ignore_errors=True)


def wait_for_text(path: Path, text: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while text not in (path.read_text(errors="replace") if path.exists() else ""):
        assert time.monotonic() < deadline, f"{text!r} never in {path}"
        time.sleep(0.2)


def test_start_up_is_a_line_per_part_and_the_logs_hold_the_rest(stack: RunningStack) -> None:
    lines = stack.start_up
    logs = stack.project / ".data" / "logs"
    assert lines[-1].startswith(f"stack   | booking API ready at {stack.base_url}"), "".join(lines)
    assert lines[-1].rstrip().endswith(f"log: {logs / 'api'}.log)"), lines[-1]
    # Every other part says once that it is ready, and where its log is; the rest of what
    # they print stays in those logs.
    ready = {part: f"{part:<8}| ready (log: {logs / part}.log)" for part in PARTS if part != "api"}
    for part, line in ready.items():
        wait_for_text(logs / f"{part}.log", READY)
        stack.launcher.wait_for(line, timeout=60)
        assert sum(line in said for said in stack.launcher.output) == 1, (part, stack.launcher.output)
    # Records below WARNING (library chatter, each part's own news) never reach the terminal.
    assert not [line for line in stack.launcher.output if " INFO " in line or '"INFO"' in line], \
        "".join(stack.launcher.output)


def test_commands_read_the_running_stack_and_say_where(stack: RunningStack) -> None:
    said = f"settings: from {stack.project / '.data' / 'stack.env'} (the running `make run`, pid"
    for argv in (("booking-dlq", "list", "--json"), ("booking-reconcile", "--json"),
                 ("booking-worker", "sagas"), ("booking-token", "alice")):
        done = stack.command(*argv)
        assert done.returncode == 0, (argv, done.stdout, done.stderr)
        assert done.stderr.splitlines() == [done.stderr.splitlines()[0]], (argv, done.stderr)
        assert done.stderr.startswith(said), (argv, done.stderr)


def test_the_token_follows_the_stacks_token_policy(stack: RunningStack) -> None:
    token = stack.command("booking-token", "alice").stdout.strip()
    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims["aud"] == AUDIENCE
    assert claims["exp"] - time.time() <= MAX_LIFETIME
    answer = httpx.get(f"{stack.base_url}/points", headers={"Authorization": f"Bearer {token}"})
    assert answer.status_code == 200, answer.text


def test_the_environment_wins_over_the_stack(stack: RunningStack) -> None:
    closed = free_port()
    elsewhere = f"postgresql+asyncpg://postgres@127.0.0.1:{closed}/x"
    done = stack.command("booking-dlq", "list", DATABASE_URL=elsewhere)
    assert done.returncode == 1
    assert "cannot reach PostgreSQL" in done.stderr and str(closed) in done.stderr, done.stderr

    too_long = stack.command("booking-token", "alice", "--hours", "2")
    assert too_long.returncode == 2 and "AUTH_JWT_MAX_LIFETIME_SECONDS" in too_long.stderr
    allowed = stack.command("booking-token", "alice", "--hours", "2",
                            AUTH_JWT_MAX_LIFETIME_SECONDS="86400", AUTH_JWT_AUDIENCE="elsewhere")
    assert allowed.returncode == 0, allowed.stderr
    claims = jwt.decode(allowed.stdout.strip(), options={"verify_signature": False})
    assert claims["aud"] == "elsewhere" and claims["exp"] - time.time() > MAX_LIFETIME


def test_without_a_stack_one_line_says_what_to_set(tmp_path: Path) -> None:
    done = subprocess.run([str(BIN / "booking-dlq"), "list"], cwd=tmp_path, env=bare_environment(),
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1, done.stderr
    assert done.stderr.startswith("error: invalid setting ") and "DATABASE_URL" in done.stderr
    assert "start `make run` in this project" in done.stderr
