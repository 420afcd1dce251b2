"""Files a running stack keeps in `.data/`: its lock, its JWT secret, its resolved settings."""

from __future__ import annotations

import fcntl
import os
import secrets
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from services.common.stack_env import JWT_SECRET_FILE, STACK_ENV, format_stack_env


class StackAlreadyRunning(Exception):
    def __init__(self, pid: str) -> None:
        super().__init__(f"another 'make run' is already running (pid {pid})")
        self.pid = pid


@contextmanager
def stack_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive lock for this launcher's lifetime; raise StackAlreadyRunning if taken."""
    path.parent.mkdir(parents=True, exist_ok=True)
    # os.open makes a non-inheritable descriptor, so a child never keeps the lock alive.
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            raise StackAlreadyRunning(holder) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        os.close(fd)


def _write_private(path: Path, text: str) -> None:
    temporary = path.with_name(path.name + ".tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as file:
        file.write(text)
    os.replace(temporary, path)


def resolve_jwt_secret(data_dir: Path) -> str:
    """Return the stack's JWT secret, generated once and kept (mode 600) across runs."""
    path = data_dir / JWT_SECRET_FILE
    if path.exists() and (secret := path.read_text().strip()):
        return secret
    secret = secrets.token_urlsafe(48)
    _write_private(path, secret + "\n")
    return secret


def write_stack_env(data_dir: Path, values: Mapping[str, str]) -> Path:
    """Write the settings other commands read (services/common/stack_env.py); private, since
    it holds the secret."""
    path = data_dir / STACK_ENV
    _write_private(path, format_stack_env(values))
    return path


def remove_stack_env(data_dir: Path) -> None:
    (data_dir / STACK_ENV).unlink(missing_ok=True)
