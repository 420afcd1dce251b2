"""Scrapes of the API's /metrics, read as Prometheus reads them, from an API of a test's own."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import httpx
from prometheus_client.parser import text_string_to_metric_families

from services.booking.config import Settings
from tests.support import free_port, metrics_url, serve_api


class Scrape:
    def __init__(self, text: str) -> None:
        self.text = text
        families = list(text_string_to_metric_families(text))
        self.families = {family.name for family in families}
        self.samples = {(sample.name, frozenset(sample.labels.items())): sample.value
                        for family in families for sample in family.samples}

    def value(self, name: str, **labels: str) -> float | None:
        return self.samples.get((name, frozenset(labels.items())))

    def of(self, name: str) -> dict[tuple[str, ...], float]:
        return {tuple(value for _, value in sorted(labels)): value
                for (sample, labels), value in self.samples.items() if sample == name}


async def scrape(http: httpx.AsyncClient) -> Scrape:
    response = await http.get("/metrics")
    assert response.status_code == 200, response.text
    return Scrape(response.text)


@asynccontextmanager
async def api(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """An API of this test's own (its own database, broker or timeouts), and a client of its
    metrics port."""
    settings = settings.model_copy(update={"metrics_port": free_port()})
    async with serve_api(settings, scraped=True), httpx.AsyncClient(
        base_url=metrics_url(settings), timeout=30
    ) as http:
        yield http


async def until(http: httpx.AsyncClient, condition: Callable[[Scrape], bool], within: float,
                what: str) -> Scrape:
    deadline = time.monotonic() + within
    while True:
        result = await scrape(http)
        if condition(result):
            return result
        assert time.monotonic() < deadline, f"{what}:\n{result.text}"
        await asyncio.sleep(0.1)
