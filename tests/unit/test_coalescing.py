"""Concurrent calls share one `run_many`; each caller gets its own result or the call's error."""

import asyncio

import pytest

from services.common.coalescing import Coalescer

pytestmark = pytest.mark.unit


class Recorder:
    """A run_many that records each call's items and answers each item doubled."""

    def __init__(self, fail: Exception | None = None) -> None:
        self.calls: list[list[tuple[str, int]]] = []
        self.fail = fail

    async def __call__(self, items: list[tuple[str, int]]) -> list[int]:
        self.calls.append(items)
        await asyncio.sleep(0)  # a round trip
        if self.fail is not None:
            raise self.fail
        return [n * 2 for _, n in items]


def by_name(item: tuple[str, int]) -> str:
    return item[0]


async def test_calls_made_in_one_turn_of_the_loop_share_one_run() -> None:
    run = Recorder()
    coalesce = Coalescer(run, key=by_name)
    results = await asyncio.gather(*(coalesce((f"k{n}", n)) for n in range(5)))
    assert results == [0, 2, 4, 6, 8]
    assert run.calls == [[("k0", 0), ("k1", 1), ("k2", 2), ("k3", 3), ("k4", 4)]]


async def test_calls_of_one_key_never_share_a_run_and_keep_their_order() -> None:
    run = Recorder()
    coalesce = Coalescer(run, key=by_name)
    results = await asyncio.gather(coalesce(("a", 1)), coalesce(("b", 2)), coalesce(("a", 3)))
    assert results == [2, 4, 6]
    assert run.calls == [[("a", 1), ("b", 2)], [("a", 3)]]


async def test_a_run_takes_at_most_its_share_and_the_rest_follow() -> None:
    run = Recorder()
    coalesce = Coalescer(run, key=by_name, most=2)
    assert await asyncio.gather(*(coalesce((f"k{n}", n)) for n in range(5))) == [0, 2, 4, 6, 8]
    assert [len(items) for items in run.calls] == [2, 2, 1]


async def test_calls_a_turn_apart_run_separately_unless_they_linger() -> None:
    run = Recorder()
    coalesce = Coalescer(run, key=by_name)

    async def later(item: tuple[str, int]) -> int:
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        return await coalesce(item)

    await asyncio.gather(coalesce(("a", 1)), later(("b", 2)))
    assert len(run.calls) == 2

    lingering_run = Recorder()
    lingering = Coalescer(lingering_run, key=by_name, linger=0.5)

    async def later_lingering(item: tuple[str, int]) -> int:
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        return await lingering(item)

    await asyncio.gather(lingering(("a", 1)), later_lingering(("b", 2)))
    assert lingering_run.calls == [[("a", 1), ("b", 2)]]


async def test_every_caller_of_a_failed_run_gets_its_error() -> None:
    coalesce = Coalescer(Recorder(fail=ConnectionError("database away")), key=by_name)
    outcomes = await asyncio.gather(coalesce(("a", 1)), coalesce(("b", 2)), return_exceptions=True)
    assert [type(outcome) for outcome in outcomes] == [ConnectionError, ConnectionError]


async def test_a_run_that_answers_the_wrong_number_of_items_fails_every_caller() -> None:
    async def short(items: list[tuple[str, int]]) -> list[int]:
        return [1]

    coalesce = Coalescer(short, key=by_name)
    outcomes = await asyncio.gather(coalesce(("a", 1)), coalesce(("b", 2)), return_exceptions=True)
    assert all(isinstance(outcome, RuntimeError) for outcome in outcomes), outcomes


async def test_an_exception_among_the_results_is_raised_to_its_caller_alone() -> None:
    async def one_refused(items: list[tuple[str, int]]) -> list[int | Exception]:
        return [LookupError(name) if name == "b" else n for name, n in items]

    coalesce = Coalescer(one_refused, key=by_name)
    outcomes = await asyncio.gather(coalesce(("a", 1)), coalesce(("b", 2)), coalesce(("c", 3)),
                                    return_exceptions=True)
    assert outcomes[0] == 1 and outcomes[2] == 3
    assert isinstance(outcomes[1], LookupError) and outcomes[1].args == ("b",)
