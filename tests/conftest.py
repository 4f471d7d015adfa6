"""Fixtures shared by every test: keep this file small and generic."""

from __future__ import annotations

import json
import random
import struct
import zlib
from collections.abc import Callable
from typing import Any

import pytest

#: The base URL and key of the connection ``kling_conn`` sets up.
TEST_BASE_URL = "https://gmi.test"
TEST_API_KEY = "sk-test-SECRET-0123456789"


def make_png(width: int = 1, height: int = 1, *, noise: bool = False) -> bytes:
    """
    A valid RGB PNG of the given size, built by hand (no Pillow needed).

    ``noise`` fills it with random pixels stored uncompressed, so the file is about
    ``3 * width * height`` bytes: a large image for size and memory checks.
    """

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit RGB, no interlace
    rng = random.Random(0)
    pixel_row = (lambda: rng.randbytes(3 * width)) if noise else (lambda: b"\xc8\x78\x28" * width)
    rows = b"".join(b"\x00" + pixel_row() for _ in range(height))  # filter 0 + pixels
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows, 0 if noise else 6))
        + chunk(b"IEND", b"")
    )


@pytest.fixture(scope="session")
def tiny_png() -> bytes:
    """A valid PNG of GMI's smallest accepted size (300x300); a few hundred bytes."""
    return make_png(300, 300)


def make_jpeg_header(width: int = 300, height: int = 300) -> bytes:
    """
    The start of a JPEG (SOI + JFIF APP0 + SOF0 + EOI): enough for content sniffing and for
    reading the size from the header, not for decoding.
    """
    app0 = b"JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"
    sof0 = struct.pack(">BHHB", 8, height, width, 3) + b"\x01\x11\x00\x02\x11\x01\x03\x11\x01"
    return (
        b"\xff\xd8"
        + b"\xff\xe0"
        + struct.pack(">H", len(app0) + 2)
        + app0
        + b"\xff\xc0"
        + struct.pack(">H", len(sof0) + 2)
        + sof0
        + b"\xff\xd9"
    )


@pytest.fixture(scope="session")
def tiny_jpeg() -> bytes:
    """A 300x300 JPEG header: sniffable and sized, not decodable."""
    return make_jpeg_header(300, 300)


@pytest.fixture
def kling_conn(monkeypatch: pytest.MonkeyPatch) -> Callable[..., dict[str, Any]]:
    """
    Set ``AIRFLOW_CONN_KLING_DEFAULT`` (restored after the test) to a JSON ``kling`` connection.

    Call it with the fields to use; by default ``host`` is :data:`TEST_BASE_URL` and
    ``password`` :data:`TEST_API_KEY`. ``extra`` is a dict. Returns the connection dict.
    ``conn_id`` picks another connection id (``AIRFLOW_CONN_<ID>``).
    """

    def configure(conn_id: str = "kling_default", **fields: Any) -> dict[str, Any]:
        connection = {"conn_type": "kling", "host": TEST_BASE_URL, "password": TEST_API_KEY, **fields}
        connection = {k: v for k, v in connection.items() if v is not None}
        monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(connection))
        return connection

    return configure


class _Done:
    """An awaitable that finishes at once, so one sleep function serves sync and async retries."""

    def __await__(self) -> Any:
        return iter(())


@pytest.fixture
def retry_sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """
    Make the hooks' retry sleeps instant, and record how long each one was asked to be.

    The backoff and the server's ``Retry-After`` hints are still computed exactly as in
    production; only the sleeping is skipped. Returns the list of requested sleeps.
    """
    from airflow_provider_kling.transport import retries

    sleeps: list[float] = []
    original = retries.retry_policy

    def sleep(seconds: float) -> _Done:
        sleeps.append(float(seconds))
        return _Done()

    def policy(**kwargs: Any) -> dict[str, Any]:
        return {**original(**kwargs), "sleep": sleep}

    monkeypatch.setattr(retries, "retry_policy", policy)
    return sleeps


@pytest.fixture
def no_settle(monkeypatch: pytest.MonkeyPatch) -> None:
    """No pause before GMI's requests are listed again after a lost submit answer."""
    from airflow_provider_kling import submission

    monkeypatch.setattr(submission, "SETTLE_SECONDS", 0.0)


@pytest.fixture
def httpx_clients(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Every ``httpx.AsyncClient`` created during the test, in order."""
    import httpx

    created: list[httpx.AsyncClient] = []

    class CountingClient(httpx.AsyncClient):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            created.append(self)

    monkeypatch.setattr(httpx, "AsyncClient", CountingClient)
    return created
