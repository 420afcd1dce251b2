"""The Redis client a process uses, chosen by REDIS_URL's form.

`redis://`, `rediss://` and `unix://` name one server (redis_multiplex.py);
`redis+cluster://host:port` and `rediss+cluster://host:port` name any node of a Redis
Cluster, from which the client learns the others (redis_cluster.py).
"""

from typing import Any, Protocol
from urllib.parse import urlsplit

from services.common.redis_cluster import CLUSTER_SCHEMES, ClusterRedis
from services.common.redis_multiplex import Arg, MultiplexedRedis, Script

URL_SCHEMES = ("redis", "rediss", "unix", *CLUSTER_SCHEMES)

__all__ = ["CLUSTER_SCHEMES", "URL_SCHEMES", "RedisClient", "Script", "connect_redis"]


class RedisClient(Protocol):
    def register_script(self, source: str) -> Script: ...

    async def execute(self, *args: Arg) -> Any: ...

    async def ping(self) -> bool: ...

    async def aclose(self) -> None: ...


def connect_redis(url: str, timeout: float = 2.0, connect_timeout: float = 2.0) -> RedisClient:
    """A client of the server or cluster `url` names; it connects on first use."""
    if urlsplit(url).scheme in CLUSTER_SCHEMES:
        return ClusterRedis(url, timeout=timeout, connect_timeout=connect_timeout)
    return MultiplexedRedis(url, timeout=timeout, connect_timeout=connect_timeout)
