"""Process-wide logging: JSON lines in production, readable lines in `make run`.

Every record is stamped with the process's service name and the current trace id
(services/common/tracing.py), so one booking can be followed from the HTTP request
through the relay and the consumers to the provider call by grepping one id. In
JSON, whatever a call passes as `extra={...}` becomes a field of its own. Phone numbers
and queue tokens are masked in every line, tracebacks included (services/common/redaction.py).
"""

import logging
import os
import sys
import threading
import time
import weakref
from datetime import UTC, datetime
from typing import Any, Literal

import orjson
from pydantic import ValidationInfo, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from services.common.redaction import redact_text
from services.common.tracing import current_trace_id

# Libraries that log every request or reconnect: their callers log the outcome.
# The words of the one record each part logs when it starts its work: `make run` shows the
# part as ready when it sees them (workers/devstack/part_output.py).
READY = "is ready"
QUIET = {"httpx": logging.WARNING, "httpcore": logging.WARNING}
_RESERVED = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {
    "message", "asctime", "service", "trace_id", "color_message", "taskName",
}


class LogSettings(BaseSettings):
    """LOG_LEVEL and LOG_FORMAT (text | json); every deployable's settings include them."""

    model_config = SettingsConfigDict(frozen=True, extra="ignore")

    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"
    log_format: Literal["text", "json"] = "text"

    @field_validator("log_level", "log_format", mode="before")
    @classmethod
    def any_case(cls, value: object, info: ValidationInfo) -> object:
        if not isinstance(value, str):
            return value
        return value.upper() if info.field_name == "log_level" else value.lower()

    @property
    def log_json(self) -> bool:
        return self.log_format == "json"


class TraceIdFilter(logging.Filter):
    """Stamp each record with the service and the current trace id (unless it has one)."""

    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def filter(self, record: logging.LogRecord) -> bool:
        record.service = self.service
        if getattr(record, "trace_id", None) is None:
            record.trace_id = current_trace_id()
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, service, logger, message, trace_id, extras."""

    def format(self, record: logging.LogRecord) -> str:
        document: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "service": getattr(record, "service", None),
            "logger": record.name,
            "message": record.getMessage(),
            "trace_id": getattr(record, "trace_id", None),
        }
        document.update(
            (key, value) for key, value in record.__dict__.items() if key not in _RESERVED
        )
        if record.exc_info:
            document["exc"] = self.formatException(record.exc_info)
        if record.stack_info:
            document["stack"] = self.formatStack(record.stack_info)
        return orjson.dumps(document, default=str).decode()


class TextFormatter(logging.Formatter):
    """`12:00:01.234 INFO  workers.saga [trace=…] message` for a terminal."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s.%(msecs)03d %(levelname)-5s %(name)s%(trace)s %(message)s",
                         datefmt="%H:%M:%S")

    def format(self, record: logging.LogRecord) -> str:
        trace_id = getattr(record, "trace_id", None)
        record.trace = f" [trace={trace_id}]" if trace_id else ""
        return super().format(record)


class BatchedStreamHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """A StreamHandler that writes its lines in batches: at most FLUSH_SECONDS late.

    A worker logs a line per event, and a write to stderr per line was 10-13 % of the
    saga's and the notifier's CPU in py-spy. Lines are gathered and written together
    by a flusher thread; a warning or worse, a full batch, or the interpreter's exit
    (logging.shutdown flushes every handler) writes at once. A process killed outright
    loses at most FLUSH_SECONDS of its info lines.
    """

    FLUSH_SECONDS = 0.2
    BATCH_CHARS = 64 * 1024

    def __init__(self, stream: Any = None) -> None:
        super().__init__(stream)
        self._lines: list[str] = []
        self._chars = 0
        _start_flusher(self)
        # A forked child has no flusher thread, and the parent writes what was pending.
        handler_ref = weakref.ref(self)
        os.register_at_fork(after_in_child=lambda: _restart_in_child(handler_ref))

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record) + self.terminator
        except Exception:
            self.handleError(record)
            return
        with self.lock:  # type: ignore[union-attr]
            self._lines.append(line)
            self._chars += len(line)
            urgent = record.levelno >= logging.WARNING or self._chars >= self.BATCH_CHARS
        if urgent:
            self.flush()

    def flush(self) -> None:
        with self.lock:  # type: ignore[union-attr]
            if self._lines:
                lines, self._lines, self._chars = self._lines, [], 0
                try:
                    self.stream.write("".join(lines))
                except (OSError, ValueError):  # stderr closed: nowhere left to say it
                    return
            super().flush()


def _start_flusher(handler: BatchedStreamHandler) -> None:
    threading.Thread(target=_flush_every_interval, args=(weakref.ref(handler),),
                     name="log-flusher", daemon=True).start()


def _restart_in_child(handler_ref: "weakref.ref[BatchedStreamHandler]") -> None:
    if (handler := handler_ref()) is not None:
        handler._lines, handler._chars = [], 0
        _start_flusher(handler)


def _flush_every_interval(handler_ref: "weakref.ref[BatchedStreamHandler]") -> None:
    """The flusher thread: it ends once its handler is gone."""
    while (handler := handler_ref()) is not None:
        handler.flush()
        del handler
        time.sleep(BatchedStreamHandler.FLUSH_SECONDS)


class RedactingFormatter(logging.Formatter):
    """Another formatter's line with phone numbers and queue tokens masked."""

    def __init__(self, inner: logging.Formatter) -> None:
        super().__init__()
        self._inner = inner

    def format(self, record: logging.LogRecord) -> str:
        return redact_text(self._inner.format(record))


def configure_logging(service: str, level: str, json_format: bool) -> None:
    """Send every record of this process to stderr, in JSON or text, with its trace id."""
    handler = BatchedStreamHandler(sys.stderr)
    handler.addFilter(TraceIdFilter(service))
    handler.setFormatter(RedactingFormatter(JsonFormatter() if json_format else TextFormatter()))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    for name, quiet_level in QUIET.items():
        logging.getLogger(name).setLevel(quiet_level)
