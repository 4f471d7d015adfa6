"""
Connect a download only to the addresses the fetch policy checked.

The policy resolves a host once; were the client to resolve it again, a DNS server could
answer a public address to the check and ``127.0.0.1`` to the connection (DNS rebinding). The
session here connects to the checked addresses themselves, while the Host header, TLS SNI and
the certificate check keep the host name. A connection to a host no check pinned is refused.

A proxy from the environment (``HTTPS_PROXY``) resolves the host itself: then the proxy, not
this module, decides where the connection goes.
"""

from __future__ import annotations

import contextlib
import ipaddress
from typing import TYPE_CHECKING, Any

from airflow_provider_kling.exceptions import KlingDownloadError
from airflow_provider_kling.transport.bounds import _pool_classes, bounded_session

if TYPE_CHECKING:
    import requests

    from airflow_provider_kling.transport.fetch import CheckedURL


class Pins:
    """The addresses checked for each host and port a download may connect to."""

    def __init__(self) -> None:
        self._by_origin: dict[tuple[str, int], tuple[str, ...]] = {}

    def add(self, checked: CheckedURL) -> None:
        """Let connections to ``checked``'s host and port go to its addresses (and only those)."""
        self._by_origin[(checked.url.host, checked.url.port)] = checked.addresses

    def addresses(self, host: str, port: int) -> tuple[str, ...]:
        """The checked addresses for a connection's host (as urllib3 spells it) and port."""
        host = host.strip("[]").lower()
        with contextlib.suppress(ValueError):
            host = str(ipaddress.ip_address(host))
        return self._by_origin.get((host, port), ())


def pinned_session(pins: Pins) -> requests.Session:
    """A :func:`~airflow_provider_kling.transport.bounds.bounded_session` that connects only to ``pins``."""
    session = bounded_session()
    http_pool, https_pool = _pool_classes()
    classes = {"http": _pinned_pool(http_pool, pins), "https": _pinned_pool(https_pool, pins)}
    for adapter in session.adapters.values():
        adapter.poolmanager.pool_classes_by_scheme = classes  # type: ignore[attr-defined]
    return session


def _pinned_pool(pool: type[Any], pins: Pins) -> type[Any]:
    base: type[Any] = pool.ConnectionCls

    class PinnedConnection(base):  # type: ignore[misc]
        def _new_conn(self) -> Any:
            return _connect(self, pins.addresses(self.host, self.port))

    return type(f"Pinned{pool.__name__}", (pool,), {"ConnectionCls": PinnedConnection})


def _connect(conn: Any, addresses: tuple[str, ...]) -> Any:
    """What urllib3's ``_new_conn`` does, to each checked address in turn instead of a lookup."""
    from urllib3.exceptions import ConnectTimeoutError, NewConnectionError
    from urllib3.util import connection

    if not addresses:
        raise KlingDownloadError(
            f"Refused to connect to {conn.host}:{conn.port}: the fetch policy did not check this "
            "host; every URL of a download must pass it first"
        )
    failures: list[str] = []
    timed_out = True
    for address in addresses:
        try:
            return connection.create_connection(
                (address, conn.port),
                conn.timeout,
                source_address=conn.source_address,
                socket_options=conn.socket_options,
            )
        except TimeoutError:
            failures.append(f"{address}: timed out after {conn.timeout} s")
        except OSError as err:
            timed_out = False
            failures.append(f"{address}: {err}")
    problem = f"could not connect to {conn.host}:{conn.port} at {'; '.join(failures)}"
    if timed_out:
        raise ConnectTimeoutError(conn, problem)
    raise NewConnectionError(conn, problem)
