"""
What many test modules share, in one place: sample images, stand-ins for what Airflow hands a
task, calls made to the simulator by hand, and the drop-folder watch run as a triggerer runs it.

Fixtures built on these live in ``tests/conftest.py``; GMI itself is faked only by the simulator
(``airflow_provider_kling.testing``) and, for bytes it cannot send, ``tests/unit/hostile.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import socket
import struct
import time
import zlib
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any

import airflow
import pytest
import requests

from airflow_provider_kling.testing.readiness import wait_until

#: The base URL and key of the connection the ``kling_conn`` fixture sets up.
TEST_BASE_URL = "https://gmi.test"
TEST_API_KEY = "sk-test-SECRET-0123456789"
#: A run id as Airflow writes one, for tasks that name files after their run.
RUN_ID = "manual__2026-01-01T00:00:00+00:00"
MODEL = "kling-3.0-turbo-i2v"
#: An image URL for tasks that never fetch it (GMI does).
IMAGE_URL = "https://example.com/frame.png"

# Airflow 3.1 asks the task supervisor for a connection its environment lacks, and outside a task
# there is none (an ImportError); in a task, and on 3.2+ anywhere, the lookup says "not found".
LOOKUP_SAYS_NOT_FOUND = pytest.mark.skipif(
    airflow.__version__.startswith("3.1."), reason="Airflow 3.1 has no lookup outside a task"
)


# --- images -------------------------------------------------------------------------------


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


# --- what Airflow hands a task ------------------------------------------------------------


class FakeTI:
    """A task instance that records what the task pushes to XCom."""

    def __init__(self) -> None:
        self.pushed: dict[str, Any] = {}

    def xcom_push(self, key: str, value: Any) -> None:
        self.pushed[key] = value


class RescheduledTI(FakeTI):
    """A try the scheduler rescheduled: it knows when the first poke was."""

    def __init__(self, first: datetime) -> None:
        super().__init__()
        self.first = first

    def get_first_reschedule_date(self, context: Any) -> datetime:
        return self.first


class FakeStateStore:
    """
    Airflow 3.3's state stores, kept in ``data`` as JSON (what the real ones keep): a task's
    ``task_state_store`` (``get``/``set``, surviving between tries) and an asset watcher's
    ``asset_state_store`` (``aget``/``aset`` on one asset's accessor).
    """

    def __init__(self) -> None:
        self.data: dict[str, Any] = {}

    def get(self, key: str, default: Any = None) -> Any:
        return self.data.get(key, default)

    def set(self, key: str, value: Any, **_: Any) -> None:
        self.data[key] = json.loads(json.dumps(value))

    def _single_accessor(self) -> FakeStateStore:
        return self

    async def aget(self, key: str, default: Any = None) -> Any:
        return json.loads(json.dumps(self.data[key])) if key in self.data else default

    async def aset(self, key: str, value: Any) -> None:
        self.set(key, value)

    def request_id(self) -> str | None:
        """The request the submitting task recorded, as a retry of it reads it."""
        from airflow_provider_kling.operators.kling import STATE_KEY
        from airflow_provider_kling.tasks.submit_once import StoredSubmit

        entry = StoredSubmit.parse(self.data.get(STATE_KEY))
        return entry.request_id if entry else None


def task_context(store: FakeStateStore | None = None, **more: Any) -> dict[str, Any]:
    """What one try of a task is given: a fresh task instance, and the task's state store if any."""
    context: dict[str, Any] = {"ti": FakeTI(), **more}
    if store is not None:
        context["task_state_store"] = store
    return context


def operator(**kwargs: Any) -> Any:
    """A ``KlingI2VOperator`` that submits :data:`IMAGE_URL` and, if asked to wait, polls every 50 ms."""
    from airflow_provider_kling.operators.kling import KlingI2VOperator

    kwargs.setdefault("task_id", "submit")
    kwargs.setdefault("first_frame", IMAGE_URL)
    kwargs.setdefault("deferrable", False)
    kwargs.setdefault("poll_interval", 0.05)
    return KlingI2VOperator(**kwargs)


def connect(monkeypatch: pytest.MonkeyPatch, host: str, password: str = TEST_API_KEY, **extra: Any) -> None:
    """Point ``kling_default`` at ``host``, with ``extra`` as the connection's extra fields."""
    connection = {"conn_type": "kling", "host": host, "password": password, "extra": json.dumps(extra)}
    monkeypatch.setenv("AIRFLOW_CONN_KLING_DEFAULT", json.dumps(connection))


async def first_event(trigger: Any) -> dict[str, Any]:
    """The payload of the first event a trigger fires."""
    async for event in trigger.run():
        return dict(event.payload)
    raise AssertionError("no event")


# --- the simulator, called by hand --------------------------------------------------------


def submit(sim: Any, prompt: str = "a calm sea", payload: dict[str, Any] | None = None) -> str:
    """
    Submit a request to the simulator as any client would (someone else in the organisation,
    with the same key); returns its id. ``payload`` replaces the default one, an image URL and
    ``prompt``.
    """
    if payload is None:
        payload = {"first_frame": "https://example.com/a.png", "prompt": prompt}
    resp = requests.post(
        f"{sim.api_url}/requests",
        json={"model": MODEL, "payload": payload},
        headers={"Authorization": f"Bearer {sim.api_key}"},
        timeout=10,
    )
    resp.raise_for_status()
    return str(resp.json()["request_id"])


def wait_for_status(sim: Any, request_id: str, status: str) -> None:
    """Wait until GMI (the simulator) reports ``status`` for the request, as a client would see it."""

    def reached() -> bool:
        resp = requests.get(
            f"{sim.api_url}/requests/{request_id}",
            headers={"Authorization": f"Bearer {sim.api_key}"},
            timeout=10,
        )
        return bool(resp.json()["status"] == status)

    wait_until(reached, 30, f"request {request_id} to become {status}", interval=0.05)


@contextlib.contextmanager
def unreachable_until(
    how: str, sleeps: Any, tries: int = 2, on_start: Callable[[Any], Any] = lambda sim: None
) -> Iterator[str]:
    """
    The base URL of a simulator that cannot be reached for the first ``tries`` tries of a call.

    ``how`` is ``"refused"`` (nothing listens: a connect is refused at once) or ``"timeout"``
    (a listener whose accept queue is full, so the kernel drops a connect and it times out).
    At the ``tries``-th retry sleep (``sleeps``, the ``retry_sleeps`` fixture) a simulator starts
    on that port, and ``on_start`` is given it.
    """
    from airflow_provider_kling.testing import KlingSimulator

    blocker = socket.socket()
    blocker.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    blocker.bind(("127.0.0.1", 0))
    port = blocker.getsockname()[1]
    waiting: list[socket.socket] = []
    if how == "refused":
        blocker.close()
    elif how == "timeout":
        blocker.listen(0)
        # A backlog of 0 holds one connection; with it taken, the next SYN goes unanswered.
        waiting.append(socket.create_connection(("127.0.0.1", port)))
    else:
        raise ValueError(f"how must be 'refused' or 'timeout', not {how!r}")
    started: list[Any] = []

    def come_up() -> None:
        blocker.close()
        for conn in waiting:
            conn.close()
        started.append(KlingSimulator(port=port).start())
        on_start(started[0])

    sleeps.then(tries, come_up)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        for sim in started:
            sim.stop()
        blocker.close()
        for conn in waiting:
            conn.close()


# --- the drop-folder watch, run as the triggerer runs it ----------------------------------

#: How often the watches these helpers make list their folder.
POLL = 0.05


async def collect(
    trigger: Any,
    until: Callable[[list[dict[str, Any]]], bool] = lambda events: False,
    seconds: float = 1.0,
    during: Callable[[], Any] | None = None,
) -> list[dict[str, Any]]:
    """
    Run the trigger until ``until(images)`` or ``seconds`` pass, then stop it as a triggerer would.

    Returns the images its events announced; the events themselves are in ``trigger.fired``.
    """
    events: list[dict[str, Any]] = []
    trigger.fired = []

    async def consume() -> None:
        async for event in trigger.run():
            assert event.payload["folder"] == str(trigger.root())
            trigger.fired.append(event.payload)
            events.extend(event.payload["images"])

    task = asyncio.create_task(consume())
    deadline = time.monotonic() + seconds
    try:
        while time.monotonic() < deadline and not until(events):
            if task.done():
                task.result()
            await asyncio.sleep(0.02)
            if during is not None:
                during()
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    return events


def watcher(path: Any, **options: Any) -> Any:
    """A ``NewImagesTrigger`` on ``path`` polling every :data:`POLL` seconds."""
    from airflow_provider_kling.triggers.storage import NewImagesTrigger

    trigger = NewImagesTrigger(path=str(path), poll_interval=POLL, **options)
    # A plain logger, so caplog sees what the triggerer's log would show on every Airflow version.
    trigger._log = logging.getLogger("tests.dropfolder")
    return trigger


def names(events: list[dict[str, Any]]) -> list[str]:
    return sorted(e["name"] for e in events)


def has_cursor(trigger: Any) -> bool:
    from airflow_provider_kling.triggers.storage.new_images import FileCursor

    store = trigger.cursor_store(trigger.root())
    if isinstance(store, FileCursor):
        return bool(store.path.exists())
    return store.key in store.accessors.data  # the FakeStateStore a test gave it


async def started(trigger: Any) -> None:
    """Let the watch take its starting point (its first listing, saved in its cursor) and stop."""
    await collect(trigger, until=lambda _: has_cursor(trigger), seconds=10)
