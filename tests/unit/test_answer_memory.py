"""A huge or inflating answer cannot take a process's memory past the bounds, retries included.

Each case polls in a fresh process (``rss_probe``) and reads its peak RSS: what a triggerer or
a worker would hold. The server sends a 300 MB chunked answer, or a gzip bomb (4 GiB of zeros in
about 4 MB), to every attempt of every poll.
"""

from __future__ import annotations

import functools
import json
import os
import socket
import subprocess
import sys
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_kling.transport import bounds
from tests.unit.hostile import raw_server, respond

ROOT = Path(__file__).parents[2]
MB = 1 << 20
SMALL = json.dumps({"request_id": "small", "status": "queued"}).encode()


def chunked(pieces: Callable[[], Iterator[bytes]], encoding: str | None = None) -> Any:
    """A script answering the huge poll with ``pieces``, chunked, and the small one at once."""

    def script(conn: socket.socket, line: str) -> bool:
        if "/small" in line:
            return respond(conn, "keep-alive", "200 OK", SMALL, {"Content-Type": "application/json"})
        extra = f"Content-Encoding: {encoding}\r\n" if encoding else ""
        conn.sendall(f"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n{extra}\r\n".encode())
        for piece in pieces():
            if piece:  # an empty chunk would end the body
                conn.sendall(b"%x\r\n%s\r\n" % (len(piece), piece))
        conn.sendall(b"0\r\n\r\n")
        return False

    return script


def huge() -> Iterator[bytes]:
    piece = b" " * MB
    for _ in range(300):
        yield piece


@functools.cache
def _member() -> bytes:
    """One gzip member of 256 MiB of zeros: about 256 KB."""
    squeeze = zlib.compressobj(9, zlib.DEFLATED, zlib.MAX_WBITS | 16)
    zeros = bytes(MB)
    return b"".join(squeeze.compress(zeros) for _ in range(256)) + squeeze.flush()


def bomb() -> Iterator[bytes]:
    """4 GiB of zeros in 4 MB: sixteen gzip members end to end, as gzip allows."""
    for _ in range(16):
        yield _member()


def probe(script: Any, **args: Any) -> dict[str, Any]:
    with raw_server(script, max_connections=100) as (base, _):
        done = subprocess.run(
            [sys.executable, "-m", "tests.unit.rss_probe", json.dumps({"base": base, **args})],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
    report: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["warm"] == ["read"]
    report["grew_mb"] = (report["after"] - report["before"]) / 1024
    return report


@pytest.mark.parametrize("hook", ["async", "sync"])
@pytest.mark.parametrize("answer", ["300 MB chunked", "gzip bomb"])
def test_retried_huge_answers_hold_one_answer_at_a_time(hook, answer):
    script = chunked(huge) if answer == "300 MB chunked" else chunked(bomb, "gzip")
    # Two polls of four attempts each, as a trigger's retries and its next poll would.
    report = probe(script, hook=hook, polls=2, concurrent=1, retries=3)
    assert len(report["errors"]) == 2
    too_large = f"larger than {bounds.MAX_ANSWER_BYTES:,} bytes"
    assert all(too_large in error for error in report["errors"]), report
    # One answer is at most 64 MiB; eight read in a row must not add up.
    assert report["grew_mb"] < 64 + 40, report


def test_concurrent_huge_answers_share_one_process_bound():
    # Smaller bounds, the same proportions: eight polls at once could hold 8 x 16 MiB without
    # the process's bound, and hold 32 MiB with it.
    report = probe(
        chunked(huge),
        hook="async",
        polls=1,
        concurrent=8,
        retries=0,
        MAX_ANSWER_BYTES=16 * MB,
        MAX_HELD_ANSWER_BYTES=32 * MB,
    )
    assert any("already hold" in error for error in report["errors"]), report
    assert report["grew_mb"] < 32 + 40, report


def test_a_forked_worker_starts_with_no_answer_held(monkeypatch):
    # Another thread is mid-read, holding the lock and 10 MiB, when the process forks.
    monkeypatch.setattr(bounds.AnswerBuffer, "_held", 10 * MB)
    lock = bounds.AnswerBuffer._lock
    with lock:
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child reports through its exit code
            free = bounds.AnswerBuffer._lock.acquire(timeout=2)
            os._exit(0 if free and bounds.AnswerBuffer._held == 0 else 1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert bounds.AnswerBuffer._held == 10 * MB
