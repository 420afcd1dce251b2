"""wrk as the load generator where the server, not the client, must be the limit.

Our Python generator tops out near 10,000 requests/s on a core; a bare ASGI app on
granian answers five times that, so the HTTP ratios are taken with wrk (C, one event
loop per thread). Its figures come back through a Lua `done()` that prints one JSON
line: exact counts and latency percentiles in microseconds, no parsing of "1.23ms".
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

THREADS = 2
CONNECTIONS = 100
MARK = "WRK-JSON "

# Every run: collect the threads, and at the end print one JSON line. `setup` and `done`
# run once, not per request, so a script with only these keeps wrk's static request.
REPORT_LUA = r"""
local threads = {}
local created = 0

function setup(thread)
  thread:set("id", created)
  created = created + 1
  table.insert(threads, thread)
end

function done(summary, latency, requests)
  local merged = {}
  for _, thread in ipairs(threads) do
    for status, n in pairs(thread:get("statuses") or {}) do
      merged[status] = (merged[status] or 0) + n
    end
  end
  local counts = {}
  for status, n in pairs(merged) do
    counts[#counts + 1] = string.format('"%d": %d', status, n)
  end
  local e = summary.errors
  io.write(string.format(
    'WRK-JSON {"requests": %d, "duration_us": %d, "errors": {"connect": %d, "read": %d, ' ..
    '"write": %d, "status": %d, "timeout": %d}, "latency_us": {"p50": %d, "p90": %d, ' ..
    '"p99": %d, "max": %d}, "statuses": {%s}}\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max,
    table.concat(counts, ", ")))
end
"""

# Requests that rotate over users: args are the users file (one "authorization<TAB>queue
# token" a line, the token may be empty), the method, the path, the thread count and the
# JSON body of every request (empty: none). Each thread takes every
# THREADS-th line and formats its requests once, in `init`, so a request costs wrk a table
# lookup, not a wrk.format; `response` counts answers by status.
ROTATE_LUA = r"""
function init(args)
  local file, method, target, count = args[1], args[2], args[3], tonumber(args[4])
  local body = nil
  if method ~= "GET" then body = args[5] or "" end
  statuses = {}
  requests = {}
  position = 0
  local index = 0
  for line in io.lines(file) do
    if index % count == id then
      local authorization, token = line:match("^([^\t]*)\t?(.*)$")
      local headers = {Authorization = authorization}
      if token ~= "" then headers["X-Queue-Token"] = token end
      if body and body ~= "" then headers["Content-Type"] = "application/json" end
      requests[#requests + 1] = wrk.format(method, target, headers, body)
    end
    index = index + 1
  end
  if #requests == 0 then error("no users for thread " .. id .. " in " .. file) end
end

function request()
  position = position % #requests + 1
  return requests[position]
end

function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
end
"""


class WrkMissing(RuntimeError):
    def __init__(self) -> None:
        super().__init__("wrk is not installed: apt-get install wrk")


def require_wrk() -> str:
    found = shutil.which("wrk")
    if found is None:
        raise WrkMissing()
    return found


@dataclass(frozen=True)
class Rotation:
    """A users file and the request every line of it becomes."""

    users: Path
    method: str
    path: str
    size: int  # lines in the users file: requests beyond it repeat a user
    body: str = ""  # the JSON body of every request, if any


@dataclass
class WrkResult:
    requests: int
    seconds: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    errors: dict[str, int]  # wrk's: connect, read, write, timeout; status = answers >= 400
    statuses: dict[str, int] = field(default_factory=dict)  # exact, when the script counted them
    wrk_cpu_seconds: float = 0.0

    @property
    def per_second(self) -> float:
        return self.requests / self.seconds if self.seconds > 0 else math.nan

    @property
    def unanswered(self) -> int:
        return sum(n for kind, n in self.errors.items() if kind != "status")

    @property
    def not_2xx(self) -> int:
        if self.statuses:
            return sum(n for status, n in self.statuses.items() if not status.startswith("2"))
        return self.errors.get("status", 0)

    @property
    def answers(self) -> dict[str, int]:
        """Answers by status: exact when counted, else what wrk tells apart (below 400 or not)."""
        if self.statuses:
            return dict(sorted(self.statuses.items()))
        failed = self.errors.get("status", 0)
        return {key: n for key, n in (("2xx/3xx", self.requests - failed), ("4xx/5xx", failed)) if n}

    @property
    def wrk_cores(self) -> float:
        return self.wrk_cpu_seconds / self.seconds if self.seconds > 0 else math.nan

    def figures(self) -> dict[str, Any]:
        return {"requests": self.requests, "seconds": self.seconds, "per_second": self.per_second,
                "p50_ms": self.p50_ms, "p90_ms": self.p90_ms, "p99_ms": self.p99_ms,
                "max_ms": self.max_ms, "answers": self.answers, "errors": self.errors,
                "wrk_cores": self.wrk_cores}


def write_users(path: Path, users: Iterable[tuple[str, str]]) -> Path:
    """One `authorization<TAB>queue token` a line, for ROTATE_LUA."""
    path.write_text("".join(f"{authorization}\t{token}\n" for authorization, token in users))
    return path


def write_script(directory: Path, rotating: bool) -> Path:
    path = directory / ("rotate.lua" if rotating else "report.lua")
    path.write_text((ROTATE_LUA if rotating else "") + REPORT_LUA)
    return path


def run_wrk(url: str, seconds: float, *, rotation: Rotation | None = None, log: Path | None = None,
            threads: int = THREADS, connections: int = CONNECTIONS) -> WrkResult:
    """Load `url` for `seconds`: wrk's figures and the CPU wrk itself used."""
    program = require_wrk()
    with tempfile.TemporaryDirectory(prefix="bench-wrk-") as scratch:
        script = write_script(Path(scratch), rotation is not None)
        argv = [program, f"-t{threads}", f"-c{connections}", f"-d{max(1, round(seconds))}s",
                "--latency", "--timeout", "10s", "-s", str(script), url]
        if rotation is not None:
            argv += ["--", str(rotation.users), rotation.method, rotation.path, str(threads),
                     rotation.body]
        output, cpu = _run(argv)
    if log is not None:
        with log.open("a") as file:
            file.write(f"$ {' '.join(argv)}\n{output}\n")
    return _parse(output, cpu)


def _run(argv: list[str]) -> tuple[str, float]:
    """wrk's output and the CPU seconds it used, read from its own rusage as it is reaped."""
    with tempfile.TemporaryFile("w+") as output:
        process = subprocess.Popen(argv, stdout=output, stderr=subprocess.STDOUT)
        try:
            _, status, usage = os.wait4(process.pid, 0)
            process.returncode = os.waitstatus_to_exitcode(status)
        finally:
            if process.returncode is None:  # interrupted: wrk must not outlive the bench
                process.kill()
                process.wait()
        output.seek(0)
        text = output.read()
    if process.returncode != 0:
        raise RuntimeError(f"wrk exited with {process.returncode}: {text[-500:]}")
    return text, usage.ru_utime + usage.ru_stime


def _parse(output: str, cpu_seconds: float) -> WrkResult:
    line = next((line for line in output.splitlines() if line.startswith(MARK)), None)
    if line is None:
        raise RuntimeError(f"wrk printed no summary: {output[-500:]}")
    figures = json.loads(line[len(MARK):])
    latency = figures["latency_us"]
    return WrkResult(
        requests=figures["requests"], seconds=figures["duration_us"] / 1e6,
        p50_ms=latency["p50"] / 1000, p90_ms=latency["p90"] / 1000, p99_ms=latency["p99"] / 1000,
        max_ms=latency["max"] / 1000, errors=figures["errors"], statuses=figures["statuses"],
        wrk_cpu_seconds=cpu_seconds,
    )
