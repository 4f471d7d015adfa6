"""Every call reads every framing real servers use, with answers larger than one read.

nginx closes the last request of each keep-alive connection (``Connection: close``), HTTP/1.0
servers end every body by closing, proxies chunk and gzip. Each path (submit, poll, download,
the async poll and the trigger) is run against a fake GMI on a raw socket answering in each.
"""

from __future__ import annotations

import gzip
import json
import logging
import socket
import time
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_kling.exceptions import (
    KlingSubmitRejected,
    KlingTransportError,
)
from airflow_provider_kling.hooks.kling import KlingAsyncHook, KlingHook
from airflow_provider_kling.tasks.submit_once import Submitter
from airflow_provider_kling.transport import bounds
from airflow_provider_kling.triggers.kling import KlingStatusTrigger
from tests.helpers import connect, first_event
from tests.unit.hostile import FRAMINGS, raw_server, respond

MODEL = "kling-3.0-turbo-i2v"
PAYLOAD = {"first_frame": "https://e.x/a.png", "prompt": "steam"}
#: A video of 1 MB, and a record of 150 KB (GMI echoes an inline image): both far past one read.
VIDEO = bytes(range(256)) * 4096
ECHO = "iVBORw0KGgo" * 14_000


def record(base: str, status: str) -> bytes:
    outcome = {"media_urls": [{"url": f"{base}/media/v.mp4"}]} if status == "success" else None
    body = {
        "request_id": "req-1",
        "status": status,
        "payload": {**PAYLOAD, "image": ECHO},
        "outcome": outcome,
    }
    return json.dumps(body).encode()


def fake_gmi(framing: str, where: dict[str, str], *, submit_status: str = "200 OK") -> Any:
    """GMI's submit, poll and media, each answered in ``framing``."""

    def script(conn: socket.socket, line: str) -> bool:
        method, target = line.split()[:2]
        base = where["base"]
        if target.startswith("/media/"):
            return respond(conn, framing, "200 OK", VIDEO, {"Content-Type": "video/mp4"})
        if method == "POST":
            body = record(base, "queued") if submit_status == "200 OK" else b'{"error": "invalid API key"}'
            return respond(conn, framing, submit_status, body, {"Content-Type": "application/json"})
        return respond(conn, framing, "200 OK", record(base, "success"), {"Content-Type": "application/json"})

    return script


@pytest.fixture
def gmi(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, list[str]]]:
    framing, submit_status = request.param
    where: dict[str, str] = {}
    with raw_server(fake_gmi(framing, where, submit_status=submit_status), max_connections=50) as (
        base,
        seen,
    ):
        where["base"] = base
        connect(monkeypatch, base)
        yield base, seen


def methods(seen: list[str]) -> list[str]:
    return [line.split()[0] for line in seen]


@pytest.mark.parametrize("gmi", [(f, "200 OK") for f in FRAMINGS], ids=FRAMINGS, indirect=True)
def test_the_sync_hook_submits_polls_and_downloads_in_every_framing(gmi, tmp_path):
    base, seen = gmi
    hook = KlingHook(retry_limit=0)
    submitted = hook.submit(MODEL, PAYLOAD)
    assert submitted.status == "queued"
    assert submitted.raw["payload"]["image"] == ECHO
    # Twice: on a kept-alive connection, the second call reuses the first one's.
    for _ in range(2):
        done = hook.get_request(submitted.request_id)
        assert done.media_urls == [f"{base}/media/v.mp4"]
    result = hook.download(done.media_urls[0], tmp_path / "v.mp4")
    assert (tmp_path / "v.mp4").read_bytes() == VIDEO
    assert result.size == len(VIDEO)
    assert methods(seen) == ["POST", "GET", "GET", "GET"]


@pytest.mark.parametrize("gmi", [(f, "200 OK") for f in FRAMINGS], ids=FRAMINGS, indirect=True)
async def test_the_async_hook_and_the_trigger_poll_in_every_framing(gmi):
    base, seen = gmi
    async with KlingAsyncHook(retry_limit=0) as hook:
        for _ in range(2):
            done = await hook.get_request("req-1")
            assert done.raw["payload"]["image"] == ECHO
    event = await first_event(KlingStatusTrigger("req-1", end_time=time.time() + 30, poll_interval=0.05))
    assert event["status"] == "success"
    assert event["media_urls"] == [f"{base}/media/v.mp4"]
    assert methods(seen) == ["GET"] * 3


@pytest.mark.parametrize("gmi", [(f, "401 Unauthorized") for f in FRAMINGS], ids=FRAMINGS, indirect=True)
def test_a_refused_submit_is_sent_once_in_every_framing(gmi):
    _, seen = gmi
    with pytest.raises(KlingSubmitRejected, match="HTTP 401"):
        KlingHook(retry_limit=3).submit(MODEL, PAYLOAD)
    # Through the operators' reconciling submit too: a 401 read as "no answer" would be listed, then resent.
    with pytest.raises(KlingSubmitRejected, match="HTTP 401"):
        Submitter(KlingHook(retry_limit=3), None, logging.getLogger(__name__)).request(MODEL, PAYLOAD, "")
    assert methods(seen) == ["POST", "POST"]


# What an encoding can and cannot make a read hold


def encoded(encoding: str, body: bytes) -> bytes:
    return {"gzip": gzip.compress, "deflate": zlib.compress}[encoding](body) if encoding != "raw" else body


def bomb(total: int) -> Iterator[bytes]:
    """gzip of ``total`` zero bytes, made as it is sent: ~1 KB on the wire inflates to 1 MB."""
    squeeze = zlib.compressobj(9, zlib.DEFLATED, zlib.MAX_WBITS | 16)
    zeros = bytes(1 << 20)
    for _ in range(total >> 20):
        yield squeeze.compress(zeros)
    yield squeeze.flush()


def answering(body: Iterator[bytes] | bytes, encoding: str) -> Any:
    def script(conn: socket.socket, line: str) -> None:
        conn.sendall(f"HTTP/1.1 200 OK\r\nContent-Encoding: {encoding}\r\nConnection: close\r\n\r\n".encode())
        for piece in [body] if isinstance(body, bytes) else body:
            conn.sendall(piece)

    return script


@pytest.mark.parametrize("hook", ["sync", "async"])
async def test_a_gzip_bomb_is_refused_as_it_inflates(monkeypatch, hook):
    monkeypatch.setattr(bounds, "MAX_ANSWER_BYTES", 8 << 20)
    with raw_server(answering(bomb(4 << 30), "gzip")) as (base, _):
        connect(monkeypatch, base)
        started = time.monotonic()
        with pytest.raises(KlingTransportError, match="larger than 8,388,608 bytes"):
            await get(hook)
    # 4 GB would take a minute to inflate; the read stopped at the bound.
    assert time.monotonic() - started < 5
    assert bounds.AnswerBuffer._held == 0


async def get(hook: str) -> Any:
    if hook == "sync":
        return KlingHook(retry_limit=0).get_request("req-1")
    async with KlingAsyncHook(retry_limit=0) as client:
        return await client.get_request("req-1")


@pytest.mark.parametrize("hook", ["sync", "async"])
@pytest.mark.parametrize(
    ("encoding", "body", "problem"),
    [
        ("br", b"\x1b\x00", "encoded as 'br', which was not asked for (only gzip, deflate are read)"),
        ("gzip", gzip.compress(b'{"request_id": "req-1"}')[:-12], "gzip body is broken: it ends before"),
        ("gzip", b"not gzip at all", "gzip body is broken: Error -3"),
    ],
    ids=["brotli", "cut", "garbage"],
)
async def test_an_answer_encoded_otherwise_is_unreadable_not_guessed(
    monkeypatch, hook, encoding, body, problem
):
    with raw_server(answering(body, encoding)) as (base, _):
        connect(monkeypatch, base)
        with pytest.raises(KlingTransportError, match=r"unreadable answer|not asked for") as info:
            await get(hook)
    assert problem in str(info.value)


@pytest.mark.parametrize("hook", ["sync", "async"])
async def test_raw_deflate_and_gzip_members_end_to_end_are_read(monkeypatch, hook):
    text = json.dumps({"request_id": "req-1", "status": "queued", "payload": {"image": ECHO}}).encode()
    squeeze = zlib.compressobj(6, zlib.DEFLATED, -zlib.MAX_WBITS)
    raw_deflate = squeeze.compress(text) + squeeze.flush()
    half = len(text) // 2
    members = gzip.compress(text[:half]) + gzip.compress(text[half:])
    for encoding, body in (("deflate", raw_deflate), ("gzip", members)):
        with raw_server(answering(body, encoding)) as (base, _):
            connect(monkeypatch, base)
            assert (await get(hook)).raw["payload"]["image"] == ECHO


def test_a_download_error_page_is_read_bounded(monkeypatch, tmp_path):
    monkeypatch.setattr(bounds, "MAX_ANSWER_BYTES", 1 << 20)

    def endless_404(conn: socket.socket, line: str) -> None:
        conn.sendall(b"HTTP/1.0 404 Not Found\r\nContent-Type: text/html\r\n\r\n")
        for _ in range(1 << 12):
            conn.sendall(b"<p>no</p>" * 1000)

    with raw_server(endless_404) as (base, _):
        connect(monkeypatch, base)
        with pytest.raises(KlingTransportError, match="larger than 1,048,576 bytes"):
            KlingHook().download(f"{base}/media/v.mp4", Path(tmp_path) / "v.mp4")
    assert list(tmp_path.iterdir()) == []
