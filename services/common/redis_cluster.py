"""A Redis Cluster client: one multiplexed connection per master, each command sent to
the master of its key's slot.

The slot map comes from CLUSTER SLOTS, asked of the node the URL names and asked again
whenever a node answers MOVED (the slot changed hands) or a connection fails (a failover
may have promoted a replica). A command names its key where redis-py's cluster client
would look for it: the first key of EVAL/EVALSHA, else the first argument; so a script
must touch keys of one slot only (the waiting room's keys share a hash tag per concert).
Commands without a key go to any master. ASK (a slot being migrated) is not followed:
the command fails with ResponseError and the caller's retry finds the slot settled.
"""

import asyncio
import bisect
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from redis.crc import key_slot
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from services.common.redis_multiplex import Arg, MultiplexedRedis, Script

CLUSTER_SCHEMES = ("redis+cluster", "rediss+cluster")
KEYLESS = frozenset({"PING", "INFO", "TIME", "CLUSTER", "SCRIPT", "FLUSHALL", "DBSIZE"})
Node = tuple[str, int]


def key_of(args: tuple[Arg, ...]) -> str | bytes | None:
    """The key that decides where a command goes, or None for a command without one."""
    command = str(args[0]).upper()
    if command in ("EVAL", "EVALSHA"):
        return str(args[3]) if int(args[2]) > 0 else None
    if command in KEYLESS or len(args) < 2:
        return None
    key = args[1]
    return key if isinstance(key, bytes) else str(key)


class ClusterRedis:
    def __init__(self, url: str, timeout: float = 2.0, connect_timeout: float = 2.0) -> None:
        parts = urlsplit(url)
        if parts.scheme not in CLUSTER_SCHEMES or not parts.hostname:
            raise ValueError(f"not a Redis Cluster URL: {url!r}")
        self._parts = parts._replace(scheme=parts.scheme.removesuffix("+cluster"), path="", query="")
        self._seed: Node = (parts.hostname, parts.port or 6379)
        self._timeout, self._connect_timeout = timeout, connect_timeout
        self._nodes: dict[Node, MultiplexedRedis] = {}
        self._starts: list[int] = []  # first slot of each range, ascending
        self._owners: list[Node] = []  # the master of each range
        self._mapping: asyncio.Task[None] | None = None

    def register_script(self, source: str) -> Script:
        return Script(self, source)

    async def execute(self, *args: Arg) -> Any:
        key = key_of(args)
        node = await self._node_of(key)
        try:
            return await node.execute(*args)
        except ResponseError as error:
            if not str(error).startswith("MOVED "):
                raise
            await self._remap(forced=True)
            return await (await self._node_of(key)).execute(*args)
        except (RedisConnectionError, RedisTimeoutError):
            self._starts = []  # ask for the map again next time: a replica may have taken over
            raise

    async def ping(self) -> bool:
        """Whether every master answers: each holds some rooms."""
        if not self._starts:
            await self._remap()
        answers = await asyncio.gather(*(self._client(node).execute("PING") for node in set(self._owners)))
        return all(answer == "PONG" for answer in answers)

    async def aclose(self) -> None:
        if self._mapping is not None:
            self._mapping.cancel()
        for node in self._nodes.values():
            await node.aclose()
        self._nodes.clear()

    async def _node_of(self, key: str | bytes | None) -> MultiplexedRedis:
        if not self._starts:
            await self._remap()
        if key is None:
            return self._client(self._owners[0])
        slot = key_slot(key.encode() if isinstance(key, str) else key)
        return self._client(self._owners[bisect.bisect_right(self._starts, slot) - 1])

    async def _remap(self, forced: bool = False) -> None:
        # Callers arriving while the map is being read share that reading.
        if self._mapping is None or (self._mapping.done() and (forced or not self._starts)):
            self._mapping = asyncio.ensure_future(self._read_map())
        await asyncio.shield(self._mapping)

    async def _read_map(self) -> None:
        known = [self._seed, *(node for node in self._owners if node != self._seed)]
        error: Exception = RedisConnectionError("no cluster node answered")
        for node in known:
            try:
                ranges = await self._client(node).execute("CLUSTER", "SLOTS")
                break
            except (RedisConnectionError, RedisTimeoutError) as failure:
                error = failure
        else:
            raise error
        ranges = sorted((int(start), (host or node[0], int(port)))
                        for start, _, (host, port, *_), *_ in ranges)
        self._starts = [start for start, _ in ranges]
        self._owners = [owner for _, owner in ranges]

    def _client(self, node: Node) -> MultiplexedRedis:
        client = self._nodes.get(node)
        if client is None:
            credentials = self._parts.netloc.rpartition("@")[0]
            netloc = f"{credentials}@{node[0]}:{node[1]}" if credentials else f"{node[0]}:{node[1]}"
            url = urlunsplit(self._parts._replace(netloc=netloc))
            client = self._nodes[node] = MultiplexedRedis(url, self._timeout, self._connect_timeout)
        return client
