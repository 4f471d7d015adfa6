"""
How long and how large one answer may be, whatever the server does.

``requests`` and ``httpx`` bound each socket read, not a whole answer: a server sending one
byte a second holds a call forever. Here a call gets a total deadline (every read is given
only the time left), and an API answer is read up to :data:`MAX_ANSWER_BYTES`, counted after
inflating and before it is held, with at most :data:`MAX_HELD_ANSWER_BYTES` held by all the
reads of the process at once. Both hold for every framing a server may use: keep-alive,
``Connection: close``, HTTP/1.0 read to the close, chunked, gzip or deflate.
"""

from __future__ import annotations

import contextlib
import functools
import io
import os
import threading
import time
import zlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from airflow_provider_kling.exceptions import KlingTransportError
from airflow_provider_kling.transport.failures import httpx_errors, requests_errors

if TYPE_CHECKING:
    import socket

    import httpx
    import requests

    from airflow_provider_kling.api import ConnectionSettings

#: The largest API answer read. GMI's payload echo can repeat a 10 MB image as ~14 MB of
#: base64; anything far beyond that is not a record.
MAX_ANSWER_BYTES = 64 << 20
#: Answer bytes all the reads of one process may hold at once. A triggerer reads the polls of
#: thousands of triggers (up to 64 at once per connection), so bounding each answer alone
#: bounds nothing: four answers at :data:`MAX_ANSWER_BYTES` fit, a fifth read fails (one failed
#: poll) rather than take the process past it.
MAX_HELD_ANSWER_BYTES = 256 << 20
#: The encodings :class:`AnswerBuffer` inflates, asked for explicitly: a client with ``brotli``
#: or ``zstandard`` installed would otherwise offer encodings read unbounded.
ACCEPT_ENCODING = "gzip, deflate"
#: Bytes read, and inflated, per step: the most one step adds to memory before it is counted.
_STEP = 1 << 16
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
            headers={"Accept-Encoding": ACCEPT_ENCODING},
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
    with AnswerBuffer(resp.headers.get("Content-Encoding"), what) as buffer:
        # Raw bytes: urllib3 would inflate a whole read before this could count it.
        for chunk in resp.raw.stream(_STEP, decode_content=False):
            buffer.feed(chunk)
        return buffer.text(resp.encoding or "utf-8")


async def aread_answer(
    client: httpx.AsyncClient, method: str, path: str, *, what: str
) -> tuple[int, str, Any]:
    """Status, text and headers of one answer, refused past :data:`MAX_ANSWER_BYTES`."""
    async with client.stream(method, path, headers={"Accept-Encoding": ACCEPT_ENCODING}) as resp:
        _check_length(resp.headers.get("Content-Length"), what)
        with AnswerBuffer(resp.headers.get("Content-Encoding"), what) as buffer:
            # Raw bytes: httpx inflates a whole read (a 64 KiB gzip read can be 64 MB) unbounded.
            async for chunk in resp.aiter_raw(_STEP):
                buffer.feed(chunk)
            return resp.status_code, buffer.text(resp.encoding or "utf-8"), resp.headers


class AnswerBuffer:
    """
    One answer's bytes as they are read: inflated a step at a time, each step counted against
    :data:`MAX_ANSWER_BYTES` and the process's :data:`MAX_HELD_ANSWER_BYTES` before it is held.

    Leaving the ``with`` block lets go of the bytes and their share of the process's budget,
    however it is left: a refused answer is not kept alive by its exception's traceback (a
    retry's next attempt would otherwise read beside it).
    """

    _held = 0
    _lock = threading.Lock()

    def __init__(self, content_encoding: str | None, what: str) -> None:
        self._what = what
        self._encoding = (content_encoding or "identity").strip().lower()
        if self._encoding not in ("identity", "gzip", "x-gzip", "deflate"):
            raise KlingTransportError(
                f"{what}: the answer is encoded as {self._encoding[:40]!r}, which was not asked for "
                f"(only {ACCEPT_ENCODING} are read)",
                sent=True,
            )
        self._inflater: Any = None
        if self._encoding != "identity":
            # deflate is zlib data (RFC 9110); raw deflate, which some servers send, is tried on failure.
            self._inflater = zlib.decompressobj(zlib.MAX_WBITS | (0 if self._encoding == "deflate" else 16))
        self._members = 1
        self._trailing = False
        self._data = bytearray()
        self._reserved = 0

    def __enter__(self) -> AnswerBuffer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._data = bytearray()
        with AnswerBuffer._lock:
            AnswerBuffer._held -= self._reserved
        self._reserved = 0

    def feed(self, raw: bytes) -> None:
        """Add ``raw`` bytes of the answer, as they came off the wire."""
        if self._inflater is None:
            self._hold(raw)
            return
        try:
            self._inflate(raw)
        except zlib.error as err:
            if self._encoding != "deflate" or self._data:
                raise self._unreadable(str(err)) from None
            self._inflater = zlib.decompressobj(-zlib.MAX_WBITS)
            try:
                self._inflate(raw)
            except zlib.error as again:
                raise self._unreadable(str(again)) from None

    def text(self, charset: str) -> str:
        """The whole answer as text, once every byte is fed."""
        if self._inflater is not None and not self._inflater.eof:
            raise self._unreadable("it ends before its last block")
        return self._data.decode(charset, errors="replace")

    def _inflate(self, raw: bytes) -> None:
        pending, more = raw, False
        while not self._trailing and (pending or more):
            if self._inflater.eof:
                # A gzip body may be several members end to end, each inflated on its own.
                self._inflater = zlib.decompressobj(zlib.MAX_WBITS | 16)
                self._members += 1
            try:
                out = self._inflater.decompress(pending, _STEP)
            except zlib.error:
                if self._members == 1:
                    raise
                # Bytes after a whole body that are no gzip member: ignored, as urllib3 and browsers do.
                self._trailing = True
                return
            self._hold(out)
            if self._inflater.eof:
                # What follows the member (its unconsumed_tail repeats these same bytes).
                pending, more = self._inflater.unused_data, False
            else:
                # A full step may leave output inside zlib: ask again, with no more input, until it is out.
                pending, more = self._inflater.unconsumed_tail, len(out) == _STEP

    def _hold(self, chunk: bytes) -> None:
        if not chunk:
            return
        _check_size(len(self._data) + len(chunk), self._what)
        with AnswerBuffer._lock:
            if AnswerBuffer._held + len(chunk) > MAX_HELD_ANSWER_BYTES:
                raise KlingTransportError(
                    f"{self._what}: the answers being read in this process already hold "
                    f"{AnswerBuffer._held:,} bytes, near the bound of {MAX_HELD_ANSWER_BYTES:,}; "
                    "this one was not read further",
                    sent=True,
                )
            AnswerBuffer._held += len(chunk)
        self._reserved += len(chunk)
        self._data += chunk

    def _unreadable(self, problem: str) -> KlingTransportError:
        return KlingTransportError(
            f"{self._what}: unreadable answer (its {self._encoding} body is broken: {problem})", sent=True
        )


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


def _forget_reads_in_child() -> None:
    # A forked child (a Celery or LocalExecutor worker) inherits other threads' reservations,
    # and maybe the lock held, but none of their reads: it starts with nothing held.
    AnswerBuffer._held = 0
    AnswerBuffer._lock = threading.Lock()


os.register_at_fork(after_in_child=_forget_reads_in_child)


class _DeadlineReader(io.RawIOBase):
    """A socket's bytes, each read given only what is left of the call's deadline."""

    def __init__(self, sock: socket.socket, stream: io.RawIOBase, deadline: Deadline) -> None:
        # The socket's own reader, so the socket stays open while this reads it: http.client
        # closes its connection after a ``Connection: close`` or HTTP/1.0 answer's head, and
        # a socket with no reader left would be closed under the body.
        self._sock = sock
        self._stream = stream
        self._deadline = deadline

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int | None:
        left = self._deadline.at - time.monotonic()
        if left <= 0:
            raise TimeoutError("the answer did not complete before the call's deadline")
        self._sock.settimeout(min(self._deadline.idle, left))
        return self._stream.readinto(buffer)

    def close(self) -> None:
        if not self.closed:
            self._stream.close()
        super().close()


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
                # detach() keeps the socket's reader (and its hold on the socket) open.
                self.fp = io.BufferedReader(_DeadlineReader(sock, self.fp.detach(), deadline))

    class DeadlineHTTPConnection(HTTPConnection):
        response_class = DeadlineResponse

    class DeadlineHTTPSConnection(HTTPSConnection):
        response_class = DeadlineResponse

    class DeadlineHTTPPool(HTTPConnectionPool):
        ConnectionCls = DeadlineHTTPConnection

    class DeadlineHTTPSPool(HTTPSConnectionPool):
        ConnectionCls = DeadlineHTTPSConnection

    return DeadlineHTTPPool, DeadlineHTTPSPool
