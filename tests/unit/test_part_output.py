"""Under `make run` the terminal shows a part's warnings, errors and tracebacks, not its chatter."""

import io
from pathlib import Path

import pytest
from rich.console import Console
from rich.text import Text

from workers.devstack.part_output import pump_lines

pytestmark = pytest.mark.unit

OUTPUT = b"""\
18:00:00.001 INFO  aiokafka.consumer.group_coordinator Joined group 'booking-ticket-saga'
18:00:00.002 WARNING workers.saga venue slow
18:00:00.003 INFO  workers.kafka booking-ticket-saga is ready: partitions assigned: payments[0]
 | a library's banner line, saying it is ready
18:00:00.003 INFO  workers.kafka booking-ticket-saga is ready: partitions assigned: payments[1]
18:00:00.004 ERROR workers.saga handler failed
Traceback (most recent call last):
  File "x.py", line 1, in <module>
ValueError: boom
18:00:00.005 INFO  workers.saga carried on
{"ts": "t", "level": "INFO", "message": "json chatter"}
{"ts": "t", "level": "CRITICAL", "message": "json trouble"}
{"ts": "t", "level": "DEBUG", "message": "json detail"}
error: invalid setting DATABASE_URL: Field required
"""


def pumped(log_path: Path, verbose: bool) -> tuple[list[str], bytes]:
    screen = io.StringIO()
    console = Console(file=screen, width=200, color_system=None)
    pump_lines(io.BytesIO(OUTPUT), log_path.open("ab"), Text("saga    | "), console, verbose,
               ready_line="ready (log: saga.log)")
    return screen.getvalue().splitlines(), log_path.read_bytes()


def test_the_terminal_gets_what_needs_a_person_and_the_log_gets_everything(tmp_path: Path) -> None:
    shown, logged = pumped(tmp_path / "saga.log", verbose=False)
    assert logged == OUTPUT
    assert [line.removeprefix("saga    | ") for line in shown] == [
        "18:00:00.002 WARNING workers.saga venue slow",
        "ready (log: saga.log)",  # once, at the first record that says so
        "18:00:00.004 ERROR workers.saga handler failed",
        "Traceback (most recent call last):",
        '  File "x.py", line 1, in <module>',
        "ValueError: boom",
        '{"ts": "t", "level": "CRITICAL", "message": "json trouble"}',
        "error: invalid setting DATABASE_URL: Field required",
    ]


def test_verbose_shows_every_line(tmp_path: Path) -> None:
    shown, _ = pumped(tmp_path / "saga.log", verbose=True)
    assert len(shown) == len(OUTPUT.splitlines()) + 1  # and the ready line
