"""A tiny scripted HTTP server on loopback, for answers the simulator cannot give.

Each connection is served in a thread of its own, request after request while its script
keeps it open, so a client's pooled keep-alive connections see what a real server does.
"""

from __future__ import annotations

import contextlib
import gzip
import socket
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager

#: What a script does with one request on a connection: write to it, given the request's first
#: line. A true result keeps the connection open for the client's next request.
Script = Callable[[socket.socket, str], bool | None]

#: Every framing :func:`respond` can answer with; what real servers send.
FRAMINGS = ("keep-alive", "close", "http/1.0", "chunked", "gzip", "deflate")


@contextmanager
def raw_server(script: Script, *, max_connections: int = 20) -> Iterator[tuple[str, list[str]]]:
    """Serve ``script`` on 127.0.0.1 for at most ``max_connections``.

    Yields the base URL and the request lines seen, in the order they came.
    """
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.2)
    seen: list[str] = []
    stop = threading.Event()
    open_conns: set[socket.socket] = set()
    threads: list[threading.Thread] = []

    def serve_one(conn: socket.socket) -> None:
        conn.settimeout(5)
        buffered = b""
        # A script that hangs up mid-answer, or a client that does, ends the connection.
        try:
            while not stop.is_set():
                line, buffered = _read_request(conn, buffered)
                if line is None:
                    return
                seen.append(line)
                if not script(conn, line):
                    return
        except OSError:
            pass
        finally:
            open_conns.discard(conn)
            conn.close()

    def serve() -> None:
        served = 0
        while not stop.is_set() and served < max_connections:
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            served += 1
            open_conns.add(conn)
            thread = threading.Thread(target=serve_one, args=(conn,), daemon=True)
            threads.append(thread)
            thread.start()

    acceptor = threading.Thread(target=serve, daemon=True)
    acceptor.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}", seen
    finally:
        stop.set()
        acceptor.join(10)
        for conn in list(open_conns):
            # Unblock a thread waiting for the next request on a connection the client keeps.
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        for thread in threads:
            thread.join(10)
        listener.close()


def _read_request(conn: socket.socket, buffered: bytes) -> tuple[str | None, bytes]:
    """The next request's first line (its head and body read off), and what came after it."""
    while b"\r\n\r\n" not in buffered:
        if len(buffered) > 1 << 16:
            return None, b""
        data = conn.recv(65536)
        if not data:
            return None, b""
        buffered += data
    head, rest = buffered.split(b"\r\n\r\n", 1)
    length = 0
    for header in head.split(b"\r\n")[1:]:
        name, _, value = header.partition(b":")
        if name.strip().lower() == b"content-length" and value.strip().isdigit():
            length = int(value)
    while len(rest) < length:
        data = conn.recv(65536)
        if not data:
            break
        rest += data
    return head.split(b"\r\n", 1)[0].decode("latin-1"), rest[length:]


def respond(
    conn: socket.socket, framing: str, status: str, body: bytes, headers: dict[str, str] | None = None
) -> bool:
    """Send one answer framed as ``framing`` (one of :data:`FRAMINGS`); True if the connection stays open.

    ``keep-alive``: HTTP/1.1 with a length; ``close``: the same and ``Connection: close``;
    ``http/1.0``: no length, the body ends when the connection does; ``chunked``; ``gzip``:
    gzip over chunked; ``deflate``: zlib data over HTTP/1.0.
    """
    version, lines = "HTTP/1.1", [f"{k}: {v}" for k, v in (headers or {}).items()]
    if framing == "gzip":
        body = gzip.compress(body, 1)
        lines.append("Content-Encoding: gzip")
    elif framing == "deflate":
        body = zlib.compress(body, 1)
        lines.append("Content-Encoding: deflate")
    if framing in ("http/1.0", "deflate"):
        version = "HTTP/1.0"
    elif framing in ("chunked", "gzip"):
        lines.append("Transfer-Encoding: chunked")
    else:
        lines.append(f"Content-Length: {len(body)}")
    if framing == "close":
        lines.append("Connection: close")
    conn.sendall("\r\n".join([f"{version} {status}", *lines, "", ""]).encode())
    if framing in ("chunked", "gzip"):
        for start in range(0, len(body), 1 << 14):
            piece = body[start : start + (1 << 14)]
            conn.sendall(b"%x\r\n%s\r\n" % (len(piece), piece))
        conn.sendall(b"0\r\n\r\n")
        return True
    conn.sendall(body)
    return framing == "keep-alive"


def answer(status: str, body: bytes = b"", headers: dict[str, str] | None = None) -> Script:
    """A script giving one whole answer, then closing the connection."""

    def script(conn: socket.socket, line: str) -> bool:
        return respond(conn, "close", status, body, headers)

    return script


def trickle(*, every: float = 0.2, max_bytes: int = 100, content_type: str = "application/json") -> Script:
    """A 200 whose JSON body comes one byte every ``every`` seconds: each read is quick, the whole is not."""

    def script(conn: socket.socket, line: str) -> None:
        head = f"HTTP/1.1 200 OK\r\nContent-Type: {content_type}\r\nContent-Length: 1000\r\n\r\n"
        conn.sendall(head.encode())
        for _ in range(max_bytes):
            conn.sendall(b" ")
            time.sleep(every)

    return script
