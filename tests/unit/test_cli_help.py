"""Every command of the package explains itself on --help, without settings or servers."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

BIN = Path(sys.executable).parent
COMMANDS = [
    ("booking-api",), ("booking-stack",), ("booking-relay",), ("booking-relay", "republish"),
    ("booking-worker",), ("booking-worker", "queue"), ("booking-worker", "saga"),
    ("booking-worker", "notifier"), ("booking-worker", "token-expiry"), ("booking-worker", "sagas"),
    ("booking-dlq",), ("booking-reconcile",), ("booking-token",),
]


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_help_prints_usage_and_exits_zero(command: tuple[str, ...]) -> None:
    # No settings at all: --help must not need them, nor start anything.
    environment = {name: value for name, value in os.environ.items()
                   if name in ("PATH", "HOME", "LANG", "TMPDIR")}
    done = subprocess.run([str(BIN / command[0]), *command[1:], "--help"], env=environment,
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, (done.stdout, done.stderr)
    words = done.stdout.lower()
    assert len(words) > 80 and command[-1].split("-")[-1] in words, done.stdout
