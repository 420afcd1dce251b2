"""One running system for the e2e tests (started once; each test uses its own users and seats)."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest

from tests.e2e.stack import KAKAO_KEY, SMS_KEY, WORKERS, Stack, WorkerProcess, worker_env
from tests.relay_support import private_database, relay_settings
from tests.support import Booking, make_settings, queue_worker, serve_api
from workers.devstack.simulators.server import SimulatorServer
from workers.outbox_relay.service import running_relay


@pytest.fixture(scope="session")
def e2e_database_url(postgres_server_url: str) -> Iterator[str]:
    # A database of its own: the relay here publishes only what these tests commit, not
    # the outbox rows the rest of the suite leaves in the session database.
    with private_database(postgres_server_url) as url:
        yield url


# Package scope: the e2e system stops when the e2e tests are done, instead of running
# (and consuming CPU) under every later test of the session.
@pytest.fixture(scope="package")
def simulators() -> Iterator[dict[str, SimulatorServer]]:
    sims = {
        "kakao": SimulatorServer("kakao", api_key=KAKAO_KEY),
        "sms": SimulatorServer("sms", api_key=SMS_KEY),
        "venue": SimulatorServer("venue"),
    }
    for sim in sims.values():
        sim.start()
    try:
        yield sims
    finally:
        for sim in sims.values():
            sim.stop()


@pytest.fixture(scope="package")
async def stack(
    e2e_database_url: str, redis_url: str, kafka_bootstrap: str,
    simulators: dict[str, SimulatorServer], tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[Stack]:
    settings = make_settings(e2e_database_url, redis_url, kafka_bootstrap)
    log_dir = tmp_path_factory.mktemp("e2e-workers")
    prefix = "e2e-" + secrets.token_hex(4)
    env = worker_env(settings, e2e_database_url, kafka_bootstrap, prefix, simulators)
    workers = {name: WorkerProcess(name, env, log_dir) for name in WORKERS}
    for worker in workers.values():
        worker.start()
    try:
        async with contextlib.AsyncExitStack() as running:
            url = await running.enter_async_context(serve_api(settings))
            await running.enter_async_context(queue_worker(settings))
            await running.enter_async_context(
                running_relay(relay_settings(e2e_database_url, kafka_bootstrap)))
            http = await running.enter_async_context(
                httpx.AsyncClient(base_url=url, timeout=60, limits=httpx.Limits(max_connections=200)))
            await asyncio.gather(*(worker.wait_ready() for worker in workers.values()))
            yield Stack(
                Booking(http), settings, e2e_database_url, kafka_bootstrap, prefix, simulators,
                workers, dlq_env={
                    "DATABASE_URL": e2e_database_url, "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
                    "KAFKA_ENABLE_IDEMPOTENCE": "false", "DLQ_REPLAY_GROUP": prefix + "-dlq-replay",
                },
            )
    finally:
        for worker in workers.values():
            worker.stop()


@pytest.fixture(autouse=True)
def healthy_providers(request: pytest.FixtureRequest) -> Iterator[None]:
    """Every e2e test starts and ends with providers that work (calls stay recorded)."""
    if "stack" not in request.fixturenames:
        yield
        return
    sims: dict[str, SimulatorServer] = request.getfixturevalue("simulators")
    for sim in sims.values():
        sim.behave(mode="ok")
        sim.start()
    yield
    for sim in sims.values():
        sim.behave(mode="ok")
        sim.start()

