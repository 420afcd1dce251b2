"""The settings a running `make run` leaves for the commands run beside it.

`make run` (workers/devstack) resolves every server and secret it starts and writes
them to `.data/stack.env` under the project root, holding `.data/stack.lock` for as
long as it runs. A command started in that project reads the file for the settings
its environment does not name; a file whose lock nobody holds is left over from a
stack that no longer runs, and is not read.
"""

from __future__ import annotations

import fcntl
import os
import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

DATA_DIR = ".data"
STACK_ENV = "stack.env"
STACK_LOCK = "stack.lock"
JWT_SECRET_FILE = "jwt-secret"  # noqa: S105 - a file name, not a secret
# The first word of every setting of every deployable (API.md §4 and each part's own):
# the environment variables `make run` was given that its commands should see too.
SETTING_PREFIXES = (
    "AUTH_", "BOOKING_", "CONSUMER_", "DATABASE_", "DB_", "DLQ_", "FORWARDED_", "HOLD_", "KAFKA_",
    "KAKAO_", "LOG_", "MAX_", "METRICS_", "NOTIFIER_", "QUEUE_", "RATE_LIMIT_", "REDIS_", "RELAY_",
    "SAGA_", "SMS_", "TOKEN_EXPIRY_", "VENUE_", "WEB_CONCURRENCY", "WORKER_",
)


def find_project_root(start: Path) -> Path:
    """The nearest directory holding pyproject.toml, so `.data/` is the same from any subdir."""
    for candidate in (start, *start.parents):
        if (candidate / "pyproject.toml").is_file():
            return candidate
    return start


def stack_settings(environ: Mapping[str, str], resolved: Mapping[str, str]) -> dict[str, str]:
    """What the stack runs with: the settings its environment names, and what it resolved."""
    given = {key: value for key, value in environ.items() if key.startswith(SETTING_PREFIXES)}
    return {**given, **resolved}


def format_stack_env(values: Mapping[str, str]) -> str:
    """KEY=VALUE lines a shell can `source` (quoted as the shell reads them back)."""
    lines = ["# written by `make run` while it runs; removed when it stops"]
    lines += [f"{key}={shlex.quote(value)}" for key, value in values.items()]
    return "\n".join(lines) + "\n"


def parse_stack_env(text: str) -> dict[str, str]:
    """The values of format_stack_env's lines (comments and blank lines skipped)."""
    values: dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        key, _, quoted = line.partition("=")
        words = shlex.split(quoted)
        values[key.strip()] = words[0] if words else ""
    return values


def lock_holder(lock: Path) -> str | None:
    """The pid written in `lock` while a launcher holds it; None when nobody does."""
    try:
        fd = os.open(lock, os.O_RDONLY)
    except OSError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
        return None
    finally:
        os.close(fd)  # also releases a shared lock we took


@dataclass(frozen=True)
class StackFile:
    """The stack.env found from a working directory, and whether its stack still runs."""

    path: Path
    running_pid: str | None

    @property
    def running(self) -> bool:
        return self.running_pid is not None

    def values(self) -> dict[str, str]:
        try:
            return parse_stack_env(self.path.read_text())
        except (OSError, ValueError):  # removed as the stack stopped, or half-written
            return {}


def find_stack_file(start: Path) -> StackFile | None:
    """The `.data/stack.env` of the project holding `start`, if there is one."""
    data = find_project_root(start) / DATA_DIR
    path = data / STACK_ENV
    if not path.is_file():
        return None
    return StackFile(path, lock_holder(data / STACK_LOCK))
