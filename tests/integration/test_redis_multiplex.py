"""The multiplexed Redis client against a real Redis: order, errors, scripts, outages."""

import asyncio
import secrets
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from services.common.redis_multiplex import MultiplexedRedis
from tests.support import free_port

pytestmark = pytest.mark.integration


@pytest.fixture
async def client(redis_url: str) -> AsyncIterator[MultiplexedRedis]:
    client = MultiplexedRedis(redis_url, timeout=5)
    yield client
    await client.aclose()


@pytest.fixture
async def admin(redis_url: str) -> AsyncIterator[Redis]:
    """A plain redis-py client, to look at and disturb what the multiplexed one does."""
    admin = Redis.from_url(redis_url, decode_responses=True)
    yield admin
    await admin.aclose()


def _key() -> str:
    return "mux-test:" + secrets.token_hex(6)


async def test_concurrent_commands_each_get_their_own_reply(client: MultiplexedRedis) -> None:
    counter, values = _key(), {_key(): str(n) for n in range(200)}
    await asyncio.gather(*(client.execute("SET", key, value) for key, value in values.items()))
    increments, reads = await asyncio.gather(
        asyncio.gather(*(client.execute("INCR", counter) for _ in range(1000))),
        asyncio.gather(*(client.execute("GET", key) for key in values)),
    )
    assert sorted(increments) == list(range(1, 1001))
    assert reads == list(values.values())


async def test_an_error_reply_fails_only_its_own_command(client: MultiplexedRedis) -> None:
    text, number = _key(), _key()
    await client.execute("SET", text, "not a number")
    results = await asyncio.gather(
        client.execute("INCR", number), client.execute("INCR", text), client.execute("INCR", number),
        return_exceptions=True,
    )
    assert results[0] == 1 and results[2] == 2
    assert isinstance(results[1], ResponseError) and "not an integer" in str(results[1])


async def test_a_script_unknown_to_redis_is_sent_whole(client: MultiplexedRedis, admin: Redis) -> None:
    key = _key()
    script = client.register_script("return redis.call('INCRBY', KEYS[1], ARGV[1])")
    assert await script(keys=[key], args=[5]) == 5
    await admin.script_flush()
    assert await script(keys=[key], args=[2]) == 7
    assert await script(keys=[key], args=[1]) == 8


async def test_a_dropped_connection_fails_what_it_carried_and_the_next_command_reconnects(
    client: MultiplexedRedis, admin: Redis
) -> None:
    name = "mux-" + secrets.token_hex(4)
    await client.execute("CLIENT", "SETNAME", name)
    blocked = asyncio.ensure_future(client.execute("BLPOP", _key(), 30))
    await asyncio.sleep(0)
    for entry in await admin.client_list():
        if entry["name"] == name:
            await admin.client_kill_filter(_id=entry["id"])
    with pytest.raises(RedisConnectionError):
        await blocked
    assert await client.ping()


async def test_a_redis_that_stops_answering_times_out(redis_url: str, admin: Redis) -> None:
    impatient = MultiplexedRedis(redis_url, timeout=0.3)
    try:
        assert await impatient.ping()
        await admin.execute_command("CLIENT", "PAUSE", "1500", "ALL")
        with pytest.raises(RedisTimeoutError):
            await impatient.execute("GET", _key())
        # Once Redis answers again, so does the client (on a new connection).
        answered = False
        for _ in range(100):
            try:
                answered = await impatient.ping()
                break
            except RedisTimeoutError:
                continue
        assert answered
    finally:
        await admin.execute_command("CLIENT", "UNPAUSE")
        await impatient.aclose()


async def test_nothing_listening_is_a_connection_error() -> None:
    client = MultiplexedRedis(f"redis://127.0.0.1:{free_port()}/0")
    with pytest.raises(RedisConnectionError):
        await client.ping()
    await client.aclose()


async def test_the_url_names_the_database(redis_url: str, admin: Redis) -> None:
    base = redis_url.rsplit("/", 1)[0] if redis_url.count("/") > 2 else redis_url
    other = MultiplexedRedis(base + "/3")
    key = _key()
    try:
        await other.execute("SET", key, "in db 3")
        assert await admin.get(key) is None
        three = Redis.from_url(base + "/3", decode_responses=True)
        assert await three.get(key) == "in db 3"
        await three.delete(key)
        await three.aclose()
    finally:
        await other.aclose()
