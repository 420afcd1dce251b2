"""Log records carry the current trace id; JSON lines for machines, text for people."""

import io
import logging
import os
import re
import signal
import subprocess
import sys
import time

import orjson
import pytest

from services.common.logging import (
    BatchedStreamHandler,
    JsonFormatter,
    LogSettings,
    RedactingFormatter,
    TextFormatter,
    TraceIdFilter,
)
from services.common.redaction import redact, redact_text
from services.common.tracing import current_trace_id, traced
from workers.common.consumer import RawMessage

pytestmark = pytest.mark.unit


def _record(message: str = "payment %s: %s", *args: object, **extra: object) -> logging.LogRecord:
    record = logging.LogRecord("workers.saga", logging.INFO, __file__, 1, message, args or ("p1", "ok"),
                               None)
    record.__dict__.update(extra)
    return record


def test_a_json_line_has_the_trace_id_service_and_extras() -> None:
    record = _record(outcome="confirmed")
    with traced("trace-1234"):
        assert TraceIdFilter("ticket-saga").filter(record)
    line = orjson.loads(JsonFormatter().format(record))
    assert line["trace_id"] == "trace-1234" and line["service"] == "ticket-saga"
    assert line["message"] == "payment p1: ok" and line["outcome"] == "confirmed"
    assert line["level"] == "INFO" and line["logger"] == "workers.saga" and line["ts"].endswith("+00:00")


def test_outside_a_trace_the_id_is_null_and_the_text_line_omits_it() -> None:
    record = _record()
    TraceIdFilter("queue").filter(record)
    assert orjson.loads(JsonFormatter().format(record))["trace_id"] is None
    assert "trace=" not in TextFormatter().format(record)
    with traced("abc12345"):
        traced_record = _record()
        TraceIdFilter("queue").filter(traced_record)
    assert "[trace=abc12345] payment p1: ok" in TextFormatter().format(traced_record)


def test_traced_restores_the_trace_before() -> None:
    with traced("outer-trace"):
        with traced("inner-trace"):
            assert current_trace_id() == "inner-trace"
        assert current_trace_id() == "outer-trace"
    assert current_trace_id() is None


def test_a_consumer_reads_the_trace_id_from_the_kafka_header() -> None:
    message = RawMessage("t", 0, 1, None, b"garbage", (("event-type", b"X"), ("trace-id", b"t-42")))
    assert message.trace_id == "t-42"
    assert RawMessage("t", 0, 1, None, None).trace_id is None


def test_log_settings_accept_any_case() -> None:
    settings = LogSettings(log_level="debug", log_format="JSON")
    assert settings.log_level == "DEBUG" and settings.log_json


def _line(message: str, level: int = logging.INFO) -> logging.LogRecord:
    return logging.LogRecord("workers.saga", level, __file__, 1, message, (), None)


class _RecordingStream(io.StringIO):
    """Keeps every write apart, to count them."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[str] = []

    def write(self, text: str) -> int:
        self.writes.append(text)
        return super().write(text)


def test_lines_are_written_in_batches_and_a_warning_writes_at_once() -> None:
    stream = _RecordingStream()
    handler = BatchedStreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(message)s"))
    for number in range(50):
        handler.handle(_line(f"line {number}"))
    handler.handle(_line("trouble", logging.WARNING))
    lines = stream.getvalue().splitlines()
    assert lines == [f"line {number}" for number in range(50)] + ["trouble"]
    assert len(stream.writes) < 51  # one write per line is what batching saves


def test_an_info_line_alone_is_written_by_the_flusher() -> None:
    stream = _RecordingStream()
    handler = BatchedStreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(message)s"))
    handler.handle(_line("quiet line"))
    deadline = time.monotonic() + 30  # only against hanging: the flusher runs every 0.2 s
    while stream.getvalue() != "quiet line\n":
        assert time.monotonic() < deadline, "the flusher never wrote the line"
        time.sleep(0.01)


def test_a_process_that_exits_right_after_logging_still_writes_its_lines() -> None:
    script = ("from services.common.logging import configure_logging\n"
              "import logging\n"
              "configure_logging('probe', 'INFO', False)\n"
              "logging.getLogger('probe').info('last words')\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert done.stderr.rstrip().endswith("INFO  probe last words")
def test_phone_numbers_and_queue_tokens_are_masked_in_every_line_and_traceback() -> None:
    phone, queue_token = "+821012345678", "Ab3dEfGhIjKlMnOpQrStUvWxYz012345"
    try:
        raise ValueError(f"Kakao refused {phone}")
    except ValueError as error:
        failure = error
    record = logging.LogRecord("workers.notifier", logging.ERROR, __file__, 1,
                               "token=%s for 01098765432: %s", (queue_token, failure),
                               (ValueError, failure, failure.__traceback__))
    with traced("0123456789abcdef0123456789abcdef"):
        TraceIdFilter("notifier").filter(record)
    for formatter in (JsonFormatter(), TextFormatter()):
        line = RedactingFormatter(formatter).format(record)
        assert phone not in line and "01098765432" not in line and queue_token not in line, line
        assert "+********5678" in line and "*******5432" in line and "token=Ab3d…" in line
        assert "Traceback" in line and "0123456789abcdef0123456789abcdef" in line


@pytest.mark.parametrize("kept", [
    "amount 100000000", "at 1765000000 s", "at 1765000000.123", "id 3f2a9c1e-1234-4321-8765-123456789012",
    "trace 0123456789abcdef0123456789abcdef", "queue token not expired in Redis",
])
def test_amounts_times_ids_and_prose_are_left_alone(kept: str) -> None:
    assert redact_text(kept) == kept


def test_structured_values_are_masked_by_key_and_phone_numbers_anywhere() -> None:
    letter = {"token": "abcdefghijklmnop", "amount": 100_000_000,
              "to": ["01099998888"], "X-Queue-Token": "qqqqqqqqqqqq", "note": "call +12025550123"}
    assert redact(letter) == {"token": "abcd…", "amount": 100_000_000, "to": ["*******8888"],
                              "X-Queue-Token": "qqqq…", "note": "call +*******0123"}


def test_a_forked_child_writes_its_lines_without_exiting_and_not_its_parents() -> None:
    script = ("import logging, os, sys, time\n"
              "from services.common.logging import configure_logging\n"
              "configure_logging('probe', 'INFO', False)\n"
              "logging.getLogger('probe').info('before the fork')\n"
              "if os.fork() == 0:\n"
              "    logging.getLogger('probe').info('from the child %d', os.getpid())\n"
              "    time.sleep(60)\n"
              "    os._exit(0)\n")
    process = subprocess.Popen([sys.executable, "-c", script], stderr=subprocess.PIPE, text=True)
    assert process.stderr is not None
    lines: list[str] = []
    child = None
    try:
        # The child lives on, so its line can only come from a flusher of its own.
        while child is None:
            line = process.stderr.readline()
            assert line, f"the child's line never came: {lines}"
            lines.append(line)
            if found := re.search(r"from the child (\d+)$", line.rstrip()):
                child = int(found[1])
    finally:
        # The parent writes its line as it exits, before or after the child's line: once it
        # has exited and the child is gone, the pipe holds every line either wrote.
        if child is not None:
            os.kill(child, signal.SIGKILL)
        process.wait()
        lines += process.stderr.readlines()
        process.stderr.close()
    assert sum("before the fork" in line for line in lines) == 1, lines
