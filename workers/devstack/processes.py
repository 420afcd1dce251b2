"""Child processes that go away with us: spawned in their own process group with a
parent-death signal, so a terminal Ctrl-C reaches only the launcher (which stops
things in order) and even a SIGKILLed launcher leaves no orphans (Linux).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, Any

from rich.console import Console
from rich.text import Text

from workers.devstack.part_output import pump_lines

START_TIMEOUT_SECONDS = 60.0
_PR_SET_PDEATHSIG = 1


class ServerStartError(RuntimeError):
    """A server did not come up; the message is one line naming the cause and its log."""


def free_port(host: str = "127.0.0.1") -> int:
    """Return a TCP port that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        port: int = probe.getsockname()[1]
        return port


def port_is_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return False
        return True


def _die_with_parent(death_signal: signal.Signals, parent_pid: int) -> Callable[[], None]:
    # Resolved in the parent: after fork only async-signal-safe work is wise.
    prctl = ctypes.CDLL(None, use_errno=True).prctl if sys.platform == "linux" else None

    def preexec() -> None:
        # Runs in the child after Popen switched user: a credential change clears
        # PDEATHSIG, so it has to be set here, not before.
        if prctl is not None:
            prctl(_PR_SET_PDEATHSIG, int(death_signal), 0, 0, 0)
        if os.getppid() != parent_pid:  # the parent died before prctl took effect
            os._exit(1)

    return preexec


def spawn_child(
    argv: Sequence[str],
    *,
    stdout: IO[Any] | int,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    user: str | None = None,
    death_signal: signal.Signals = signal.SIGTERM,
) -> subprocess.Popen[bytes]:
    """Start a child in its own process group that is signalled when we die.

    PDEATHSIG fires when the *thread* that forked exits, so call this from a
    thread that lives as long as the child should (the main thread).
    """
    return subprocess.Popen(  # noqa: S603 - argv is built by our own code
        list(argv),
        stdin=subprocess.DEVNULL,
        stdout=stdout,
        stderr=subprocess.STDOUT,
        env=dict(env) if env is not None else None,
        cwd=cwd,
        user=user,
        process_group=0,
        preexec_fn=_die_with_parent(death_signal, os.getpid()),
    )


def log_tail(path: Path, lines: int = 5) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "(no log)"
    tail = [line.strip() for line in text.splitlines() if line.strip()][-lines:]
    return " | ".join(tail) or "(empty log)"


class RunningServer:
    """One server process: started ready, stoppable, restartable on the same port and data."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        *,
        url: str,
        port: int,
        log_path: Path,
        is_ready: Callable[[], bool],
        stop_signal: signal.Signals = signal.SIGTERM,
        user: str | None = None,
    ) -> None:
        self.name = name
        self.url = url
        self.port = port
        self.log_path = log_path
        self._argv = list(argv)
        self._is_ready = is_ready
        self._stop_signal = stop_signal
        self._user = user
        self._log: IO[bytes] | None = None
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def process(self) -> subprocess.Popen[bytes]:
        if self._process is None:
            raise RuntimeError(f"{self.name} is not started")
        return self._process

    def start(self, timeout: float = START_TIMEOUT_SECONDS) -> RunningServer:
        """Start the process and return once it answers; raise ServerStartError if it never does.

        Call from the main thread: the server gets its death signal when this thread ends.
        """
        self.launch()
        try:
            self._wait_until_ready(self.process, timeout)
        except BaseException:  # a Ctrl-C while starting must not leave a half-started server
            self.stop()
            raise
        return self

    def launch(self) -> None:
        """Start the process without waiting for it to answer (`answers()` says when it does).

        Call from the main thread, as `start`.
        """
        if not port_is_free("127.0.0.1", self.port):
            # Without this check the readiness probe could be answered by a stranger.
            raise ServerStartError(f"{self.name} cannot start: port {self.port} is already in use")
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = self.log_path.open("ab")
        self._process = spawn_child(
            self._argv, stdout=self._log, user=self._user, death_signal=self._stop_signal
        )

    def answers(self) -> bool:
        """Whether the server answers its readiness probe now."""
        return self._is_ready()

    def _wait_until_ready(self, process: subprocess.Popen[bytes], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not self._is_ready():
            if (code := process.poll()) is not None:
                problem = f"exited with code {code} while starting on port {self.port}"
            elif time.monotonic() > deadline:
                problem = f"did not answer on port {self.port} within {timeout:.0f} s"
            else:
                time.sleep(0.1)
                continue
            raise ServerStartError(
                f"{self.name} {problem}; {self.log_path} ends with: {log_tail(self.log_path)}"
            )

    def stop(self, timeout: float = 10) -> None:
        """Ask the server to stop; SIGKILL it and every process under it if it has not within timeout."""
        process = self._process
        if process is not None and process.poll() is None:
            process.send_signal(self._stop_signal)
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        if self._log is not None:
            self._log.close()
            self._log = None

    def pids(self) -> list[int]:
        """The server's process and every process under it, now (read from /proc: slow on a
        busy machine, so a caller that must signal at an exact moment reads them first)."""
        return [self.process.pid, *_descendants(self.process.pid)]

    def send(self, sig: signal.Signals, pids: list[int] | None = None) -> None:
        """Signal the server and every process under it (SIGSTOP freezes it, SIGCONT thaws
        it): a PostgreSQL backend leaves the postmaster's process group as it starts.
        `pids`: those read earlier by `pids()`, signalled without reading /proc again."""
        for pid in self.pids() if pids is None else pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)

    def kill(self, timeout: float = 10) -> None:
        """SIGKILL the server and every process under it, as a crash would, and wait until
        they are gone: a PostgreSQL server refuses to start while a backend of the last lives."""
        process = self.process
        doomed = [process.pid, *_descendants(process.pid)]
        self.send(signal.SIGKILL)
        process.wait()
        deadline = time.monotonic() + timeout
        while any(_runs(pid) for pid in doomed):
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.name}: processes outlived SIGKILL: {doomed}")
            time.sleep(0.02)
        if self._log is not None:
            self._log.close()
            self._log = None

    def restart(self, timeout: float = 10) -> None:
        """Stop, then start again on the same port and data (the broker's topics are lost)."""
        self.stop(timeout)
        self.start()

    def __enter__(self) -> RunningServer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


# --- long-running parts of the system (API, workers) ------------------------

PART_STYLES = ("cyan", "magenta", "yellow", "blue", "green", "bright_red", "bright_cyan")


@dataclass(frozen=True)
class Part:
    """A long-running part of the system: a name for its output lines and a command."""

    name: str
    argv: tuple[str, ...]


class RunningPart:
    """A part's process, its output kept in its log file (part_output.py says what else is shown)."""

    def __init__(self, name: str, process: subprocess.Popen[bytes], pump: threading.Thread,
                 log_path: Path):
        self.name = name
        self.process = process
        self.log_path = log_path
        self._pump = pump

    @classmethod
    def start(
        cls, part: Part, env: Mapping[str, str], cwd: Path, console: Console, index: int,
        *, log_dir: Path, verbose: bool = False,
    ) -> RunningPart:
        log_dir.mkdir(parents=True, exist_ok=True)
        log_path = log_dir / f"{part.name}.log"
        log = log_path.open("ab", buffering=0)  # unbuffered: a reader sees each line at once
        try:
            process = spawn_child(part.argv, stdout=subprocess.PIPE, env=env, cwd=cwd)
        except BaseException:
            log.close()
            raise
        assert process.stdout is not None
        prefix = Text(f"{part.name:<8}| ", style=PART_STYLES[index % len(PART_STYLES)])
        pump = threading.Thread(
            target=pump_lines, args=(process.stdout, log, prefix, console, verbose),
            kwargs={"ready_line": f"ready (log: {log_path})"}, daemon=True)
        pump.start()
        return cls(part.name, process, pump, log_path)

    def stop(self, timeout: float = 10) -> None:
        """SIGTERM the part's process group (its own workers too), SIGKILL after timeout."""
        if self.process.poll() is None:
            _signal_group(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                _signal_group(self.process.pid, signal.SIGKILL)
                self.process.wait()
        self._pump.join(timeout=2)
        if self.process.stdout is not None:
            self.process.stdout.close()


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):  # the group already ended
        os.killpg(pgid, sig)


def _states() -> dict[int, tuple[str, int]]:
    """Every process's state letter and parent, from /proc (Linux)."""
    found = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            # The command name is in parentheses and may hold spaces: fields follow the last ")".
            state, parent = stat.read_text().rpartition(")")[2].split()[:2]
        except (OSError, ValueError):
            continue  # the process ended while we looked
        found[int(stat.parent.name)] = (state, int(parent))
    return found


def _descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for child, (_, parent) in _states().items():
        children.setdefault(parent, []).append(child)
    found, todo = [], list(children.get(pid, ()))
    while todo:
        found.append(child := todo.pop())
        todo.extend(children.get(child, ()))
    return found


def _runs(pid: int) -> bool:
    """Whether `pid` is a live process (a zombie waiting to be reaped is not)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"
