"""The yardstick: pgbench tpcb-like on the same PostgreSQL, in a database of its own.

Absolute figures drift with whatever else the machine is doing; our payments per
second divided by pgbench's transactions per second, measured minutes apart on the
same server, drifts much less.
"""

from __future__ import annotations

import asyncio
import os
import re
import secrets
import subprocess
from dataclasses import dataclass

from sqlalchemy.engine import make_url

from bench.stack import execute
from workers.devstack.embedded import pg_bin

TPS = re.compile(r"^tps = ([0-9.]+)", re.MULTILINE)


@dataclass(frozen=True)
class PgbenchResult:
    tps: float
    clients: int
    scale: int
    seconds: float

    @property
    def label(self) -> str:
        return f"tpcb-like, {self.clients} clients, scale {self.scale}, {self.seconds:.0f} s"


def _connection_args(url: str, database: str) -> list[str]:
    parsed = make_url(url)
    args = ["-h", parsed.host or "127.0.0.1", "-p", str(parsed.port or 5432)]
    args += ["-U", parsed.username or "postgres", database]
    return args


def _env(url: str) -> dict[str, str]:
    password = make_url(url).password
    return {**os.environ, "PGPASSWORD": str(password)} if password else dict(os.environ)


def run_pgbench(server_url: str, clients: int, seconds: float = 10, scale: int = 20) -> PgbenchResult:
    """Initialise a scratch pgbench database, run tpcb-like once, drop the database."""
    database = f"pgbench_{secrets.token_hex(4)}"
    asyncio.run(execute(server_url, f'CREATE DATABASE "{database}"'))
    program = str(pg_bin("pgbench"))
    connection = _connection_args(server_url, database)
    env = _env(server_url)
    try:
        # Server-side data generation: a scale-20 database in a few seconds.
        subprocess.run(
            [program, "-i", "-q", "-I", "dtGvp", "-s", str(scale), *connection],
            capture_output=True, check=True, env=env,
        )
        done = subprocess.run(
            [program, "-n", "-c", str(clients), "-j", "2", "-T", str(int(seconds)), *connection],
            capture_output=True, check=True, text=True, env=env,
        )
    finally:
        asyncio.run(execute(server_url, f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'))
    found = TPS.search(done.stdout)
    if found is None:
        raise RuntimeError(f"pgbench printed no tps line: {done.stdout[-500:]}")
    return PgbenchResult(float(found.group(1)), clients, scale, seconds)
