"""The cluster client against a real three-master Redis Cluster: routing, MOVED, rooms per slot."""

import asyncio
import secrets
import uuid
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

import httpx
import pytest
from pydantic import ValidationError
from redis.asyncio import Redis
from redis.crc import key_slot

from services.booking.adapters.waiting_room import WaitingRooms
from services.booking.config import Settings
from services.booking.domain.waiting_room import Lifetimes, Room, RoomPolicy
from services.common.redis_client import RedisClient, connect_redis
from tests.support import serve_api

pytestmark = pytest.mark.integration


@pytest.fixture
async def client(redis_cluster_url: str) -> AsyncIterator[RedisClient]:
    client = connect_redis(redis_cluster_url, timeout=5)
    yield client
    await client.aclose()


@pytest.fixture
async def masters(redis_cluster_url: str) -> AsyncIterator[dict[str, Redis]]:
    """A plain redis-py client of each master, by node id: to look at where keys went."""
    seed = urlsplit(redis_cluster_url)
    first = Redis(host=seed.hostname or "", port=seed.port or 0, decode_responses=True)
    nodes = {}
    for line in (await first.execute_command("CLUSTER", "NODES")).splitlines():
        node_id, address, flags = line.split()[:3]
        if "master" in flags:
            host, _, port = address.split("@")[0].rpartition(":")
            nodes[node_id] = Redis(host=host, port=int(port), decode_responses=True)
    await first.aclose()
    assert len(nodes) == 3
    yield nodes
    for node in nodes.values():
        await node.aclose()


async def _owner(masters: dict[str, Redis], key: str) -> str:
    slot = key_slot(key.encode())
    for node_id, node in masters.items():
        if await _serves(node, slot):
            return node_id
    raise AssertionError(f"no master serves slot {slot}")


async def _serves(node: Redis, slot: int) -> bool:
    me = await node.execute_command("CLUSTER", "MYID")
    for start, end, (_, _, owner, *_), *_ in await node.execute_command("CLUSTER", "SLOTS"):
        if start <= slot <= end:
            return bool(owner == me)
    return False


async def test_commands_and_scripts_reach_the_master_of_their_slot(
    client: RedisClient, masters: dict[str, Redis]
) -> None:
    values = {f"cl:{secrets.token_hex(6)}": str(n) for n in range(300)}
    await asyncio.gather(*(client.execute("SET", key, value) for key, value in values.items()))
    assert await asyncio.gather(*(client.execute("GET", key) for key in values)) == list(values.values())
    holding = {node_id: await node.dbsize() for node_id, node in masters.items()}
    assert all(holding.values()), holding  # 300 keys over three masters: each got some

    script = client.register_script("return redis.call('INCRBY', KEYS[1], ARGV[1])")
    counters = [f"cl:{{{secrets.token_hex(4)}}}:n" for _ in range(30)]
    assert await asyncio.gather(*(script(keys=[key], args=[5]) for key in counters)) == [5] * 30
    assert await client.ping()


async def test_a_moved_slot_is_followed(client: RedisClient, masters: dict[str, Redis]) -> None:
    await client.ping()  # the client knows the map now
    while True:  # a key of an empty slot, which can change hands at once
        key = f"moved:{secrets.token_hex(6)}"
        owner = await _owner(masters, key)
        if not await masters[owner].execute_command("CLUSTER", "COUNTKEYSINSLOT", key_slot(key.encode())):
            break
    target = next(node_id for node_id in masters if node_id != owner)
    slot = key_slot(key.encode())
    # Every master learns the new owner; the client does not.
    for node in masters.values():
        await node.execute_command("CLUSTER", "SETSLOT", slot, "NODE", target)

    await client.execute("SET", key, "after")  # MOVED by the old owner, then sent to the new

    assert await masters[target].get(key) == "after"
    assert await masters[owner].execute_command("CLUSTER", "COUNTKEYSINSLOT", slot) == 0


async def test_each_room_keeps_its_keys_in_one_slot_and_rooms_spread_over_the_masters(
    client: RedisClient, masters: dict[str, Redis]
) -> None:
    rooms = WaitingRooms(client, Lifetimes(60, 60), "spread" + secrets.token_hex(4))
    concerts = [uuid.uuid4() for _ in range(30)]
    for version, concert_id in enumerate(concerts, start=1):
        await rooms.publish(Room(concert_id, RoomPolicy(admit_per_second=100, max_active=10), version))
    for concert_id in concerts:
        for user in ("a", "b", "c"):
            await rooms.issue(concert_id, user)
        step = await rooms.admit(concert_id, seed=1)
        assert step is not None and (step.admitted, step.waiting) == (3, 0)

    homes: dict[uuid.UUID, set[str]] = {concert_id: set() for concert_id in concerts}
    for node_id, node in masters.items():
        async for key in node.scan_iter(match=f"queue:{rooms.keys(concerts[0]).namespace}:{{room:*"):
            concert_id = uuid.UUID(key.split("{room:")[1].split("}")[0])
            homes[concert_id].add(node_id)
    assert all(len(nodes) == 1 for nodes in homes.values()), homes
    assert len(set.union(*homes.values())) == 3  # 30 rooms: every master has some


async def test_the_api_on_a_cluster_is_ready_and_a_bad_url_stops_it_at_start(
    settings: Settings, redis_cluster_url: str
) -> None:
    on_cluster = settings.model_copy(update={"redis_url": redis_cluster_url})
    async with serve_api(on_cluster) as url, httpx.AsyncClient(base_url=url) as http:
        ready = await http.get("/health/ready")
        assert ready.status_code == 200 and ready.json()["checks"]["redis"] == "ok", ready.text
    for wrong in ("redis+cluster://", "memcached://127.0.0.1:11211", "cluster://127.0.0.1:7000"):
        with pytest.raises(ValidationError, match="redis_url"):
            Settings(**{**settings.model_dump(), "redis_url": wrong})
