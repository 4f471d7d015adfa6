"""HTTP clients shared by the async hooks of one connection in one event loop.

See :class:`~airflow_provider_kling.hooks.kling.KlingAsyncHook`.

A triggerer runs thousands of triggers in one event loop. A client of their own would cost each about
800 KB (its TLS context and connection pool), a TLS context build that blocks the loop for ~25 ms, and
a connection to GMI each; shared clients cost them nothing and keep a few warm connections.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import weakref
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import ssl

    import httpx

    from airflow_provider_kling.api import ConnectionSettings

#: Connections per ``httpx.AsyncClient``. httpcore's pool checks every connection, and for each
#: idle one counts them all again, on every request: small pools keep that cost flat.
CONNECTIONS_PER_SHARD = 4
#: Clients (and so 4x connections) one event loop may open to one GMI connection. At ~150 ms a
#: poll, 64 connections carry ~400 polls a second: 4,000 triggers polling every 10 s.
MAX_SHARDS = 16


@dataclass
class _Shard:
    client: httpx.AsyncClient
    gate: asyncio.Semaphore


class SharedClient:
    """The clients shared by the hooks of one connection in one event loop.

    Requests go to the first client with a free connection, and a new client is opened only when all
    are busy, so a quiet triggerer keeps one client and a handful of connections. Each request waits
    on its client's semaphore rather than in httpcore's queue, whose scan of every queued request
    against every connection costs milliseconds per request once hundreds queue.
    """

    def __init__(self, make_client: Callable[[], httpx.AsyncClient], settings: ConnectionSettings) -> None:
        self._make_client = make_client
        #: The connection's settings, one object for every hook that shares this client: a
        #: triggerer holding thousands of waits keeps one copy, and its key forms are computed once.
        self.settings = settings
        self._shards: list[_Shard] = []
        self._turn = 0
        self.users = 0

    @contextlib.asynccontextmanager
    async def slot(self) -> AsyncIterator[httpx.AsyncClient]:
        """A client with a connection reserved for one request."""
        shard = self._pick()
        async with shard.gate:
            yield shard.client

    def _pick(self) -> _Shard:
        for shard in self._shards:
            if not shard.gate.locked():
                return shard
        if len(self._shards) < MAX_SHARDS:
            shard = _Shard(self._make_client(), asyncio.Semaphore(CONNECTIONS_PER_SHARD))
            self._shards.append(shard)
            return shard
        self._turn = (self._turn + 1) % len(self._shards)
        return self._shards[self._turn]

    @property
    def clients(self) -> int:
        """How many ``httpx.AsyncClient`` are open."""
        return len(self._shards)

    async def aclose(self) -> None:
        shards, self._shards = self._shards, []
        for shard in shards:
            await shard.client.aclose()


class SharedClients:
    """Hand out shared clients, counting users; the last user to leave closes the client."""

    def __init__(self) -> None:
        # Keyed by loop as well: an httpx client must not be used from another event loop.
        self._by_loop: weakref.WeakKeyDictionary[
            asyncio.AbstractEventLoop, dict[tuple[ConnectionSettings, str, float], SharedClient]
        ] = weakref.WeakKeyDictionary()

    async def acquire(
        self, settings: ConnectionSettings, user_agent: str, connect_timeout: float
    ) -> SharedClient:
        """The client for these settings on the running loop; pair every call with :meth:`release`."""
        import httpx

        # Building a TLS context reads the CA bundle: ~25 ms of CPU that must not block the loop.
        ssl_context = await asyncio.to_thread(_ssl_context)
        clients = self._by_loop.setdefault(asyncio.get_running_loop(), {})
        key = (settings, user_agent, connect_timeout)
        shared = clients.get(key)
        if shared is None:
            limits = httpx.Limits(
                max_connections=CONNECTIONS_PER_SHARD, max_keepalive_connections=CONNECTIONS_PER_SHARD
            )
            shared = clients[key] = SharedClient(
                functools.partial(
                    httpx.AsyncClient,
                    verify=ssl_context,
                    base_url=settings.api_url,
                    headers=settings.headers(user_agent),
                    timeout=httpx.Timeout(settings.timeout, connect=connect_timeout),
                    limits=limits,
                ),
                settings,
            )
        shared.users += 1
        return shared

    async def release(self, shared: SharedClient) -> None:
        """Give a client back; the last user closes it, so an idle triggerer holds no connections."""
        shared.users -= 1
        if shared.users > 0:
            return
        clients = self._by_loop.get(asyncio.get_running_loop(), {})
        # Forget it before awaiting, so a hook entering meanwhile builds a fresh client.
        for key, value in list(clients.items()):
            if value is shared:
                del clients[key]
        await shared.aclose()

    def open_clients(self) -> int:
        """Clients open on the running loop (for tests and benchmarks)."""
        return len(self._by_loop.get(asyncio.get_running_loop(), {}))


@functools.cache
def _ssl_context() -> ssl.SSLContext:
    """httpx's default TLS context (certifi's CA bundle, SSL_CERT_FILE honoured), built once per process."""
    import httpx

    return httpx.create_ssl_context()


shared_clients = SharedClients()
