"""The load generator: a process of its own, so its CPU shows apart from the system's.

    python -m bench.loadgen RESULT.json < spec.json

The spec names a flow of bench/flows.py, the API's address, the JWT secret and the
flow's parameters. The result adds the generator's own CPU use, so a report can
show that the generator was not what limited a figure.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import uvloop

from bench.flows import FLOWS


def run_flow(spec: dict[str, Any]) -> dict[str, Any]:
    cpu, wall = time.process_time(), time.perf_counter()
    result: dict[str, Any] = uvloop.run(FLOWS[spec["flow"]](spec))
    result["generator"] = {
        "cpu_seconds": time.process_time() - cpu, "wall_seconds": time.perf_counter() - wall,
    }
    return result


@dataclass(frozen=True)
class Generator:
    process: subprocess.Popen[bytes]
    result_path: Path
    log_path: Path

    def running(self) -> bool:
        return self.process.poll() is None


def spawn(spec: dict[str, Any], log_path: Path) -> Generator:
    """Start a generator process on `spec`; its errors go to `log_path`, its result to a
    file beside it (a pipe would stall a generator whose parent is busy sampling)."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    result_path = log_path.with_name(f"result-{time.monotonic_ns()}.json")
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "bench.loadgen", str(result_path)], stdin=subprocess.PIPE,
            stdout=log, stderr=log,
        )
    assert process.stdin is not None
    with process.stdin:
        process.stdin.write(json.dumps(spec).encode())
    return Generator(process, result_path, log_path)


def collect(generator: Generator) -> dict[str, Any]:
    """Wait for a generator and return its result; raise with the log's last line if it failed."""
    if generator.process.wait() != 0:
        lines = generator.log_path.read_text(errors="replace").strip().splitlines() or ["?"]
        raise RuntimeError(f"load generator failed with code {generator.process.returncode}: "
                           f"{lines[-1]} (see {generator.log_path})")
    result: dict[str, Any] = orjson.loads(generator.result_path.read_bytes())
    generator.result_path.unlink()
    return result


def generate(spec: dict[str, Any], log_path: Path) -> dict[str, Any]:
    """Run a flow in a new generator process and return its result (called by scenarios)."""
    return collect(spawn(spec, log_path))


def main() -> None:
    spec = json.load(sys.stdin)
    Path(sys.argv[1]).write_bytes(orjson.dumps(run_flow(spec)))


if __name__ == "__main__":
    main()
