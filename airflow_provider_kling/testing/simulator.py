"""A local stand-in for GMI Cloud's request-queue API, served by uvicorn.

In tests::

    with KlingSimulator(queued_seconds=0.2, processing_seconds=0.3) as sim:
        sim.script("POST /requests", [Fault.rate_limited(retry_after_ms=50)])
        ...  # point the client at sim.base_url with sim.api_key

From a shell (prints the base URL, serves until SIGTERM or Ctrl+C)::

    python -m airflow_provider_kling.testing.simulator --port 8765
"""

from __future__ import annotations

import contextlib
import logging
import socket
import struct
import sys
import threading
import time
from collections.abc import Callable, Iterable
from importlib.util import find_spec
from types import TracebackType
from typing import TYPE_CHECKING, Any, cast

import uvicorn

from airflow_provider_kling.api.connection import API_PREFIX
from airflow_provider_kling.testing import wire
from airflow_provider_kling.testing.app import ABORT_EXTENSION, create_app
from airflow_provider_kling.testing.config import SimulatorConfig, split_settings
from airflow_provider_kling.testing.readiness import wait_until
from airflow_provider_kling.testing.state import SimulatorState, SubmittedRequest

if TYPE_CHECKING:
    from uvicorn._types import ASGIReceiveCallable, ASGISendCallable, Scope

    from airflow_provider_kling.testing.faults import Fault

# httptools is uvicorn's fast parser and what "auto" would pick; h11 is the pure-Python fallback.
if find_spec("httptools") is not None:
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol as _BaseProtocol
else:  # pragma: no cover - depends on the environment
    from uvicorn.protocols.http.h11_impl import H11Protocol as _BaseProtocol  # type: ignore[assignment]

log = logging.getLogger(__name__)


class AbortableHTTPProtocol(_BaseProtocol):
    """uvicorn's HTTP protocol, plus a scope extension with which the app can reset the connection.

    ASGI has no way to drop a connection without answering, so connection-reset faults need this.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        inner = self.app

        async def app(scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable) -> None:
            extended = cast("dict[str, Any]", scope)
            extended["extensions"] = {**(extended.get("extensions") or {}), ABORT_EXTENSION: self._abort}
            await inner(scope, receive, send)

        self.app = app

    def _abort(self) -> None:
        # Linger 0 turns close() into a TCP RST, like a crashed proxy, rather than a polite FIN.
        if self.transport.is_closing():  # the client already went away
            return
        sock = self.transport.get_extra_info("socket")
        with contextlib.suppress(OSError, AttributeError, ValueError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.transport.abort()


class KlingSimulator:
    """A GMI request-queue simulator running in a background thread on ``host`` (loopback by default).

    Its settings are the fields of :class:`~airflow_provider_kling.testing.config.ServerSettings`
    (``api_key``, ``host``, ``port``, ...) and of
    :class:`~airflow_provider_kling.testing.config.SimulatorConfig` (``queued_seconds``,
    ``outcome_shape``, ...), given by name: ``KlingSimulator(queued_seconds=0.2)``.

    :param config: behaviour to start from; settings given by name apply over it.
    :param clock: time source for the request lifecycle, e.g. a
        :class:`~airflow_provider_kling.testing.state.ManualClock`.
    :raises TypeError: a setting neither class declares.
    :raises ValueError: a setting's value is not allowed; the message says what is.
    """

    def __init__(
        self,
        config: SimulatorConfig | None = None,
        *,
        clock: Callable[[], float] = time.time,
        **settings: Any,
    ) -> None:
        self.server_settings, config = split_settings(settings, config)
        self.state = SimulatorState(self.server_settings.api_key, config, clock)
        self.app = create_app(self.state)
        self.host = self.server_settings.host
        self._port: int | None = None
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    # Lifecycle

    def start(self, timeout: float = 10.0) -> KlingSimulator:
        """Bind the socket and serve in a daemon thread; returns once requests are accepted."""
        if self._server is not None:
            return self
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((self.host, self.server_settings.port))
            sock.listen(self.server_settings.backlog)
        except OSError:
            sock.close()
            raise
        self._port = sock.getsockname()[1]
        self.state.shutting_down.clear()
        config = uvicorn.Config(
            self.app,
            host=self.host,
            port=self._port,
            http=AbortableHTTPProtocol,
            ws="none",
            lifespan="off",
            log_config=None,  # never reconfigure the host process's logging
            log_level=self.server_settings.log_level,
            access_log=self.server_settings.access_log,
            proxy_headers=False,
            server_header=False,
            backlog=self.server_settings.backlog,
            timeout_graceful_shutdown=1,
        )
        server = uvicorn.Server(config)
        thread = threading.Thread(
            target=self._serve, args=(server, sock), name="kling-simulator", daemon=True
        )
        self._server, self._thread = server, thread
        thread.start()

        def started() -> bool:
            if server.started:
                return True
            if not thread.is_alive():
                raise RuntimeError("the Kling simulator's server thread exited")
            return False

        try:
            wait_until(started, timeout, "the Kling simulator to start", interval=0.005)
        except (RuntimeError, TimeoutError) as exc:
            self.stop()
            raise RuntimeError("the Kling simulator did not start") from exc
        return self

    @staticmethod
    def _serve(server: uvicorn.Server, sock: socket.socket) -> None:
        try:
            server.run(sockets=[sock])
        except BaseException:  # uvicorn exits via SystemExit on startup failure
            log.exception("Kling simulator server stopped with an error")
        finally:
            sock.close()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop serving; connections waiting on a scripted delay are reset."""
        server, thread = self._server, self._thread
        if server is None or thread is None:
            return
        self.state.shutting_down.set()
        server.should_exit = True
        thread.join(timeout)
        if thread.is_alive():
            server.force_exit = True
            thread.join(timeout)
        self._server = self._thread = None
        self.state.media.close()

    def __enter__(self) -> KlingSimulator:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # Addresses

    @property
    def port(self) -> int:
        """The bound port (only known once started)."""
        if self._port is None:
            raise RuntimeError("the simulator has not been started")
        return self._port

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:<port>``: what a connection's host should be."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def api_url(self) -> str:
        """The base URL plus GMI's API prefix ``/api/v1/ie/requestqueue/apikey``."""
        return self.base_url + API_PREFIX

    @property
    def api_key(self) -> str:
        """The accepted API key."""
        return self.state.api_key

    # Test controls, delegated to the state

    @property
    def config(self) -> SimulatorConfig:
        """The current behaviour configuration."""
        return self.state.config

    def configure(self, **changes: Any) -> SimulatorConfig:
        """Change timing, shapes or statuses for requests submitted from now on."""
        return self.state.configure(**changes)

    def script(self, route: str, faults: Fault | Iterable[Fault]) -> None:
        """Queue scripted answers for a route key such as ``"POST /requests"`` (one per call, FIFO)."""
        self.state.script(route, faults)

    def clear_faults(self, route: str | None = None) -> None:
        """Drop queued faults for a route key, or all."""
        self.state.clear_faults(route)

    def fail_next(self, message: str = "requested by fail_next") -> None:
        """Make the next submitted request end ``failed`` with ``message``."""
        self.state.fail_next(message)

    def count(self, route: str | None = None) -> int:
        """Calls seen on a route key, fault answers and auth failures included (all routes if ``None``)."""
        return self.state.count(route)

    @property
    def counts(self) -> dict[str, int]:
        """Calls per route key."""
        return self.state.counts()

    @property
    def refused_submits(self) -> int:
        """Submits answered 429 because the configured ``rate_limit`` was reached."""
        return self.state.refused_submits()

    @property
    def requests(self) -> list[SubmittedRequest]:
        """Submitted requests, oldest first, with the (redacted) headers they came with."""
        return self.state.requests

    def get_request(self, request_id: str) -> SubmittedRequest:
        """A submitted request by id; ``KeyError`` if unknown."""
        request = self.state.get(request_id)
        if request is None:
            raise KeyError(request_id)
        return request

    def record(self, request_id: str) -> dict[str, Any]:
        """What ``GET /requests/{id}`` would answer now."""
        return wire.record(self.get_request(request_id), self.state.config, self.state.clock(), self.base_url)

    def last_headers(self, route: str) -> dict[str, str] | None:
        """Redacted headers of the latest call on a route key."""
        return self.state.last_headers(route)

    def reset(self) -> None:
        """Forget requests, counters, faults and pending failures; restore the initial configuration."""
        self.state.reset()


if __name__ == "__main__":
    from airflow_provider_kling.testing.cli import main

    sys.exit(main())
