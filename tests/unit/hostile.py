"""A tiny scripted HTTP server on loopback, for answers the simulator cannot give."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

#: What a script does with one connection: write to it, given the request's first line.
Script = Callable[[socket.socket, str], None]


@contextmanager
def raw_server(script: Script, *, max_connections: int = 20) -> Iterator[tuple[str, list[str]]]:
    """Serve ``script`` on 127.0.0.1 for at most ``max_connections``.

    Yields the base URL and the request lines seen.
    """
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.2)
    seen: list[str] = []
    stop = threading.Event()

    def serve() -> None:
        served = 0
        while not stop.is_set() and served < max_connections:
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            served += 1
            with conn:
                conn.settimeout(5)
                head = b""
                while b"\r\n\r\n" not in head and len(head) < 1 << 16:
                    data = conn.recv(4096)
                    if not data:
                        break
                    head += data
                line = head.split(b"\r\n", 1)[0].decode("latin-1")
                seen.append(line)
                with contextlib.suppress(OSError):  # the client hung up: what a bounded call does
                    script(conn, line)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}", seen
    finally:
        stop.set()
        thread.join(10)
        listener.close()


def answer(status: str, body: bytes = b"", headers: dict[str, str] | None = None) -> Script:
    """A script giving one whole answer."""

    def script(conn: socket.socket, line: str) -> None:
        lines = [f"HTTP/1.1 {status}", f"Content-Length: {len(body)}", "Connection: close"]
        lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
        conn.sendall(("\r\n".join(lines) + "\r\n\r\n").encode() + body)

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
