"""Where a part's output goes under `make run`: all of it to the part's log file, and to
the terminal only what needs a person (warnings, errors, tracebacks) and one line when the
part is ready (its first record saying READY), unless verbose.

A part writes log records (services/common/logging.py: text or JSON lines) and, when
something goes badly wrong, bare lines: a traceback, or `error: …` from a setting it
refused. Lines that follow a shown record or a bare error belong to it and are shown too.
"""

from __future__ import annotations

import re
from typing import IO

import orjson
from rich.console import Console
from rich.text import Text

from services.common.logging import READY

TEXT_RECORD = re.compile(rb"^\d\d:\d\d:\d\d\.\d{3} (?P<level>[A-Z]+)\s")
SHOWN_LEVELS = {b"WARNING", b"ERROR", b"CRITICAL"}
BARE_ERRORS = (b"Traceback (most recent call last)", b"error:", b"Fatal Python error")


class Notable:
    """Decides line by line what a person at the terminal should see."""

    def __init__(self) -> None:
        self._showing = False

    def __call__(self, line: bytes) -> bool:
        level = _record_level(line)
        if level is not None:
            self._showing = level in SHOWN_LEVELS
        elif line.startswith(BARE_ERRORS):
            self._showing = True
        return self._showing


def _record_level(line: bytes) -> bytes | None:
    """The level of a log record line, or None for a line that is not one."""
    if match := TEXT_RECORD.match(line):
        return match["level"]
    if line.startswith(b"{"):
        try:
            level = orjson.loads(line).get("level")
        except (orjson.JSONDecodeError, AttributeError):
            return None
        return level.encode() if isinstance(level, str) else None
    return None


def pump_lines(
    stream: IO[bytes], log: IO[bytes], prefix: Text, console: Console, verbose: bool,
    ready_line: str | None = None,
) -> None:
    """Copy every line of `stream` to `log`, and the notable ones (all if verbose) to `console`;
    show `ready_line` once, at the part's first record that says it is ready."""
    notable = Notable()
    ready_mark = READY.encode()
    with log:
        for raw in iter(stream.readline, b""):
            log.write(raw)
            if verbose or notable(raw):
                line = Text(raw.decode("utf-8", errors="replace").rstrip())
                console.print(Text.assemble(prefix, line), soft_wrap=True)
            if ready_line is not None and ready_mark in raw and _record_level(raw) is not None:
                console.print(Text.assemble(prefix, Text(ready_line, style="green")), soft_wrap=True)
                ready_line = None
