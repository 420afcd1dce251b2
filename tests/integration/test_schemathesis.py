"""An outside conformance fuzzer, schemathesis, finds no mismatch between /openapi.json and the API.

Every check and every phase (examples, coverage, fuzzing, stateful: it follows the document's
links), as an admin and as a user with an active queue token, against the session's real API.
A bounded, deterministic run keeps it reproducible and within the suite's time.
"""

import asyncio
import os
import sys
from pathlib import Path

import pytest

from tests.support import Booking, auth, new_user

pytestmark = pytest.mark.integration
SCHEMATHESIS = Path(sys.executable).parent / "schemathesis"
PROJECT = Path(__file__).resolve().parents[2]
HOOKS = "tests.schemathesis_hooks"
MAX_EXAMPLES = 150
RUN_SECONDS = 300


async def _schemathesis(api_url: str, headers: dict[str, str], report: Path) -> tuple[int, str]:
    command = [
        str(SCHEMATHESIS), "run", f"{api_url}/openapi.json", "--checks", "all",
        "--phases", "examples,coverage,fuzzing,stateful",
        "--max-examples", str(MAX_EXAMPLES), "--generation-deterministic",
        "--workers", "2", "--request-timeout", "30",
        "--no-color", "--report", "ndjson", "--report-dir", str(report),
        *(part for name, value in headers.items() for part in ("-H", f"{name}: {value}")),
    ]
    environment = {**os.environ, "SCHEMATHESIS_HOOKS": HOOKS, "PYTHONPATH": str(PROJECT)}
    process = await asyncio.create_subprocess_exec(
        *command, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        env=environment, cwd=report)  # its cache (.schemathesis/) goes there too
    output, _ = await asyncio.wait_for(process.communicate(), RUN_SECONDS)
    assert process.returncode is not None
    return process.returncode, output.decode(errors="replace")


async def test_schemathesis_finds_nothing_as_an_admin(
    api_url: str, booking: Booking, tmp_path: Path,
) -> None:
    await booking.create_concert()  # something to browse
    status, output = await _schemathesis(api_url, auth("fuzz-admin", role="admin"), tmp_path)
    assert status == 0, output[-20_000:]


async def test_schemathesis_finds_nothing_as_a_user_with_a_queue_token(
    api_url: str, booking: Booking, tmp_path: Path,
) -> None:
    user = new_user("fuzz")
    concert = await booking.create_concert(seat_count=200)
    await booking.charge(user, 1_000_000)
    token = await booking.active_token(user, concert)
    headers = {**auth(user), "X-Queue-Token": token}
    status, output = await _schemathesis(api_url, headers, tmp_path)
    assert status == 0, output[-20_000:]
