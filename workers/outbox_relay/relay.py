"""The relay's loops: claim → publish → settle, plus stats and retention purge."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Awaitable, Callable

from services.booking.adapters.outbox import OutboxStore
from workers.outbox_relay.config import Settings
from workers.outbox_relay.health import Health
from workers.outbox_relay.metrics import RelayMetrics
from workers.outbox_relay.publisher import Outcome, Publisher
from workers.outbox_relay.wakeup import DATABASE_ERRORS, Wakeup

log = logging.getLogger("workers.outbox_relay")

# The shortest spacing of claims, but after a full batch. Each claim, publish and settle
# costs the relay a few ms of CPU on this machine whatever the batch holds: its CPU per
# event at 400 events/s fell from 1,145 to 943 µs once a short batch waited too. 10 ms
# would make it 648 µs, but commit -> broker p99 at 1,000/s (bar 50 ms) rose to 37-57 ms
# from 22-30, and each payment's notification crosses the relay twice.
GATHER_SECONDS = 0.005


class Relay:
    def __init__(
        self,
        settings: Settings,
        store: OutboxStore,
        publisher: Publisher,
        metrics: RelayMetrics,
        wakeup: Wakeup,
    ) -> None:
        self._settings = settings
        self._store = store
        self._publisher = publisher
        self.metrics = metrics
        self._wakeup = wakeup
        self._stopping = asyncio.Event()
        self._claimed_at = 0.0
        self.finished = asyncio.Event()
        self.failure: BaseException | None = None
        backoff = (settings.relay_backoff_initial_seconds, settings.relay_backoff_max_seconds)
        self.broker = Health("broker", *backoff, on_change=self._broker_changed)
        self.database = Health("database", *backoff)

    def stop(self) -> None:
        """Finish the batches in flight, then return from run()."""
        self._stopping.set()
        self._wakeup.notify_all()

    async def run(self) -> None:
        settings = self._settings
        tasks = [asyncio.create_task(self._publish_loop())
                 for _ in range(settings.relay_concurrency)]
        tasks += [
            asyncio.create_task(self._every(settings.relay_stats_interval_seconds,
                                            self.refresh_stats)),
            asyncio.create_task(self._every(settings.relay_purge_interval_seconds, self.purge)),
        ]
        try:
            await asyncio.gather(*tasks[: settings.relay_concurrency])
        except Exception as error:
            log.exception("outbox relay loop crashed")
            self.failure = error
            raise
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            self.finished.set()

    async def run_once(self) -> int | None:
        """Claim, publish and settle one batch; the number claimed, or None on failure."""
        token = uuid.uuid4()
        self._claimed_at = time.monotonic()
        try:
            rows = await self._store.claim(
                token, self._settings.relay_lease_seconds, self._settings.relay_batch_size
            )
        except DATABASE_ERRORS as error:
            await self.database.failed(error)
            return None
        self.database.succeeded()
        if not rows:
            return 0
        outcome = await self._publisher.publish(rows)
        await self._settle(token, outcome)
        if outcome.transient_error is not None:
            await self.broker.failed(outcome.transient_error)
        elif outcome.published:
            self.broker.succeeded()
        return len(rows)

    async def refresh_stats(self) -> None:
        self.metrics.observe_stats(await self._store.stats())

    async def purge(self) -> None:
        purged = await self._store.purge_published(self._settings.relay_retention_seconds)
        if purged:
            self.metrics.purged.inc(purged)
            log.info("purged %d published outbox rows past the retention", purged)

    async def _publish_loop(self) -> None:
        while not self._stopping.is_set():
            seen = self._wakeup.generation
            claimed = await self.run_once()
            if claimed == 0:
                await self._wakeup.wait(seen, self._settings.relay_poll_interval_seconds)
                await self._gather_commits()
            elif claimed is not None and claimed < self._settings.relay_batch_size:
                # A claim returns one row per aggregate, so a short batch does not mean the
                # table is drained; but claimed again at once, it mostly finds the one commit
                # made meanwhile, and a loop that never waits claims each commit alone.
                await self._gather_commits()

    async def _gather_commits(self) -> None:
        """Claim at most once every GATHER_SECONDS after a wake-up: when commits come
        faster than that, those of a few milliseconds share one claim and one publish
        instead of paying for one each; a commit after a quiet spell is claimed at once."""
        wait = self._claimed_at + GATHER_SECONDS - time.monotonic()
        if wait > 0:
            await asyncio.sleep(wait)

    async def _settle(self, token: uuid.UUID, outcome: Outcome) -> None:
        published = [row.id for row in outcome.published]
        # Rows acked but not marked would be published again once the lease ends,
        # so keep trying while the lease lasts; after that the update is harmless
        # either way (the token check makes it a no-op if another relay took over).
        deadline = time.monotonic() + self._settings.relay_lease_seconds
        while True:
            try:
                marked = await self._store.settle(token, published, outcome.failed, outcome.dead)
            except DATABASE_ERRORS as error:
                if time.monotonic() > deadline:
                    log.error("gave up settling a batch; its rows will be published again")
                    return
                await self.database.failed(error)
                continue
            self.database.succeeded()
            self._count(outcome, marked)
            return

    def _count(self, outcome: Outcome, marked: int) -> None:
        self.metrics.published.inc(marked)
        if outcome.published:
            # One observation per batch, of its oldest event: an upper bound for the
            # batch at a fraction of the cost of one per event.
            oldest = min(row.occurred_at for row in outcome.published)
            self.metrics.latency.observe(max(0.0, outcome.acked_at - oldest.timestamp()))
        if outcome.failed:
            self.metrics.publish_errors.labels("transient").inc(len(outcome.failed))
        if outcome.dead:
            self.metrics.publish_errors.labels("permanent").inc(len(outcome.dead))
            self.metrics.dead_lettered.inc(len(outcome.dead))
            for row_id, error in outcome.dead:
                log.error("outbox row %d can never be published, marked dead: %s", row_id, error)
        if marked < len(outcome.published):
            log.warning(
                "%d acknowledged rows had lost their lease to another relay",
                len(outcome.published) - marked,
            )

    def _broker_changed(self, up: bool) -> None:
        self.metrics.broker_up.set(1 if up else 0)
        if not up:
            self._publisher.forget_topics()

    async def _every(self, seconds: float, action: Callable[[], Awaitable[None]]) -> None:
        while not self._stopping.is_set():
            try:
                await action()
            except DATABASE_ERRORS:
                pass  # the publish loops report the database's state
            except Exception:
                log.exception("outbox relay housekeeping failed; trying again later")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), seconds)
