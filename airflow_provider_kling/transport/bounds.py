"""
How long and how large one answer may be, whatever the server does.

``requests`` and ``httpx`` bound each socket read, not a whole answer: a server sending one
byte a second holds a call forever. Here a call gets a total deadline (every read is given
only the time left), and an API answer is read up to :data:`MAX_ANSWER_BYTES`.
"""

from __future__ import annotations

import contextlib
import functools
import io
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from airflow_provider_kling.exceptions import KlingTransportError
from airflow_provider_kling.transport.errors import httpx_errors, requests_errors

if TYPE_CHECKING:
    import socket

    import httpx
    import requests

    from airflow_provider_kling.api import ConnectionSettings

#: The largest API answer read. GMI's payload echo can repeat a 10 MB image as ~14 MB of
#: base64; anything far beyond that is not a record.
MAX_ANSWER_BYTES = 64 << 20
#: The slowest download accepted once its size is known, in bytes a second: a download may
#: take the connection's timeout plus its size at this rate.
MIN_DOWNLOAD_RATE = 256 << 10
#: The longest a download of unknown size (no ``Content-Length``, no ``max_bytes``) may take.
MAX_DOWNLOAD_SECONDS = 1800.0

_local = threading.local()


@dataclass
class Deadline:
    """When the current call must be over (monotonic), and the longest a single read may wait."""

    at: float
    idle: float
    seconds: float

    @property
    def expired(self) -> bool:
        return time.monotonic() >= self.at

    def extend_to(self, seconds: float) -> None:
        """Give the call ``seconds`` from now, once a download's size is known."""
        self.seconds = seconds
        self.at = time.monotonic() + seconds


@contextlib.contextmanager
def call_deadline(seconds: float, *, idle: float, what: str) -> Iterator[Deadline]:
    """
    Bound every ``requests`` read made in this block (through :func:`bounded_session`) by a
    total deadline; a transport error past it says so.
    """
    deadline = Deadline(time.monotonic() + seconds, idle, seconds)
    previous = getattr(_local, "deadline", None)
    _local.deadline = deadline
    try:
        yield deadline
    except KlingTransportError as err:
        if not deadline.expired:
            raise
        raise KlingTransportError(
            f"{what}: no complete answer within {deadline.seconds:g} s (it came too slowly)", sent=err.sent
        ) from None
    finally:
        _local.deadline = previous


def bounded_session() -> requests.Session:
    """A ``requests.Session`` whose reads obey :func:`call_deadline`."""
    import requests

    session = requests.Session()
    adapter = requests.adapters.HTTPAdapter()
    http_pool, https_pool = _pool_classes()
    adapter.poolmanager.pool_classes_by_scheme = {"http": http_pool, "https": https_pool}
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


def send(
    session: requests.Session,
    method: str,
    path: str,
    body: Any,
    params: Mapping[str, str] | None,
    settings: ConnectionSettings,
    connect_timeout: float,
    what: str,
) -> tuple[int, str, Mapping[str, str]]:
    """Status, text and headers of one API call, within the connection's timeout in total."""
    limit = call_deadline(settings.timeout, idle=settings.timeout, what=what)
    with limit, requests_errors(what, settings):
        # A redirect would resend the key and the whole payload, inline image included, elsewhere.
        resp = session.request(
            method,
            settings.api_url + path,
            data=body,
            params=params,
            timeout=(connect_timeout, settings.timeout),
            stream=True,
            allow_redirects=False,
        )
        with resp:
            return resp.status_code, read_answer(resp, what=what), resp.headers


async def asend(
    client: httpx.AsyncClient, method: str, path: str, settings: ConnectionSettings, what: str
) -> tuple[int, str, Mapping[str, str]]:
    """The async :func:`send`: httpx bounds each read, this the whole answer."""
    import asyncio

    with httpx_errors(what, settings):
        try:
            return await asyncio.wait_for(aread_answer(client, method, path, what=what), settings.timeout)
        except asyncio.TimeoutError:
            raise KlingTransportError(
                f"{what}: no complete answer within {settings.timeout:g} s (it came too slowly)", sent=True
            ) from None


def read_answer(resp: requests.Response, *, what: str) -> str:
    """The answer's text, refused past :data:`MAX_ANSWER_BYTES`."""
    _check_length(resp.headers.get("Content-Length"), what)
    data = bytearray()
    for chunk in resp.iter_content(1 << 16):
        data += chunk
        _check_size(len(data), what)
    return bytes(data).decode(resp.encoding or "utf-8", errors="replace")


async def aread_answer(
    client: httpx.AsyncClient, method: str, path: str, *, what: str
) -> tuple[int, str, Any]:
    """Status, text and headers of one answer, refused past :data:`MAX_ANSWER_BYTES`."""
    async with client.stream(method, path) as resp:
        _check_length(resp.headers.get("Content-Length"), what)
        data = bytearray()
        async for chunk in resp.aiter_bytes():
            data += chunk
            _check_size(len(data), what)
        return resp.status_code, bytes(data).decode(resp.encoding or "utf-8", errors="replace"), resp.headers


def download_seconds(idle: float, size: int | None) -> float:
    """The whole time a download of ``size`` bytes may take (see :data:`MIN_DOWNLOAD_RATE`)."""
    if size is None:
        return MAX_DOWNLOAD_SECONDS
    return idle + size / MIN_DOWNLOAD_RATE


def _check_length(length: str | None, what: str) -> None:
    if length is not None and length.strip().isdigit():
        _check_size(int(length), what)


def _check_size(size: int, what: str) -> None:
    if size > MAX_ANSWER_BYTES:
        # sent=True: the request arrived, so a submit answered this way may exist and is not resent.
        raise KlingTransportError(
            f"{what}: the answer is larger than {MAX_ANSWER_BYTES:,} bytes, which no GMI answer needs; "
            "it was not read further",
            sent=True,
        )


class _DeadlineReader(io.RawIOBase):
    """A socket's bytes, each read given only what is left of the call's deadline."""

    def __init__(self, sock: socket.socket, deadline: Deadline) -> None:
        self._sock = sock
        self._deadline = deadline

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        left = self._deadline.at - time.monotonic()
        if left <= 0:
            raise TimeoutError("the answer did not complete before the call's deadline")
        self._sock.settimeout(min(self._deadline.idle, left))
        return self._sock.recv_into(buffer)


@functools.cache
def _pool_classes() -> tuple[type[Any], type[Any]]:
    # Built on first use: urllib3 and http.client stay unimported while a DAG is parsed.
    import http.client

    from urllib3.connection import HTTPConnection, HTTPSConnection
    from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

    class DeadlineResponse(http.client.HTTPResponse):
        def __init__(self, sock: socket.socket, *args: Any, **kwargs: Any) -> None:
            super().__init__(sock, *args, **kwargs)
            deadline = getattr(_local, "deadline", None)
            if deadline is not None:
                self.fp.close()
                self.fp = io.BufferedReader(_DeadlineReader(sock, deadline))

    class DeadlineHTTPConnection(HTTPConnection):
        response_class = DeadlineResponse

    class DeadlineHTTPSConnection(HTTPSConnection):
        response_class = DeadlineResponse

    class DeadlineHTTPPool(HTTPConnectionPool):
        ConnectionCls = DeadlineHTTPConnection

    class DeadlineHTTPSPool(HTTPSConnectionPool):
        ConnectionCls = DeadlineHTTPSConnection

    return DeadlineHTTPPool, DeadlineHTTPSPool
