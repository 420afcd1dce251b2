"""The event loop the long-running workers (consumers, relay, sweeper, queue) run on.

uvloop: its transports write from C, and each worker's sends (PostgreSQL, the broker,
the providers) are most of its CPU. Under hold + pay (`make bench SCENARIO=holdpay`, six
interleaved pairs) the workers' CPU per payment over the API's was 0.77-0.80 on uvloop
against 0.80-0.83 on asyncio's own loop. The operators' commands keep asyncio.run.
"""

from collections.abc import Coroutine
from typing import Any, TypeVar

import uvloop

T = TypeVar("T")


def run_worker_loop(main: Coroutine[Any, Any, T]) -> T:
    """Run `main` to its end on a new uvloop event loop, as asyncio.run would."""
    return uvloop.run(main)
