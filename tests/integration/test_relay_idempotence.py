"""A broker without idempotent producers (Tansu) and KAFKA_ENABLE_IDEMPOTENCE on: the relay
says once what to set and stops, instead of retrying a setting forever."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from workers.devstack.embedded import RunningServer, start_broker

pytestmark = pytest.mark.integration


@pytest.fixture
def tansu(server_log_dir: Path) -> Iterator[RunningServer]:
    """The embedded broker itself, whatever broker the environment names for other tests."""
    with start_broker(log_dir=server_log_dir) as server:
        yield server


def test_relay_names_the_setting_once_and_exits_2(
    tansu: RunningServer, database_url: str, tmp_path: Path
) -> None:
    env = {**os.environ, "DATABASE_URL": database_url, "KAFKA_BOOTSTRAP_SERVERS": tansu.url,
           "KAFKA_ENABLE_IDEMPOTENCE": "true", "RELAY_METRICS_PORT": "0"}
    done = subprocess.run([sys.executable, "-m", "workers.outbox_relay"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 2, (done.stdout, done.stderr)
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    assert "CRITICAL" in lines[0] and f"the broker at {tansu.url} refuses idempotent producers" in lines[0]
    assert "set KAFKA_ENABLE_IDEMPOTENCE=false" in lines[0]
