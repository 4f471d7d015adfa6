"""
Which video URLs the provider fetches: GMI's answer names them, so a hostile or broken answer
must not turn a download into a request to the worker's own network.

A URL is fetched when it is on the API's own origin (the simulator serves media there), on a
host the connection lists in ``allowed_media_hosts``, or over https to a host whose every
address is public. Each redirect hop is checked the same way before it is followed.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from airflow_provider_kling.exceptions import KlingDownloadError

#: Redirect hops a download may take; object stores and CDNs need one or two.
MAX_REDIRECTS = 5

_HOW_TO_ALLOW = (
    "to fetch from this host anyway, add it to the 'allowed_media_hosts' extra of the Kling "
    "connection (a list or comma-separated host names, optionally with :port)"
)


def resolve_host(host: str, port: int) -> list[str]:
    """Every address ``host`` resolves to (tests replace this to give made-up hosts an address)."""
    return [str(info[4][0]) for info in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)]


@dataclass(frozen=True)
class FetchPolicy:
    """
    :param api_base_url: the connection's base URL: its origin is always allowed.
    :param allowed_hosts: ``name`` or ``name:port`` entries fetched at any address, over http too.
    :param resolve: host and port to addresses; ``socket.getaddrinfo`` by default.
    """

    api_base_url: str
    allowed_hosts: Sequence[str] = ()
    resolve: Callable[[str, int], list[str]] | None = field(default=None, compare=False)

    def check(self, url: str) -> None:
        """:raises KlingDownloadError: the URL is refused, naming it, why and how to allow it."""
        problem = self.problem(url)
        if problem is not None:
            shown = url if len(url) <= 200 else url[:200] + "..."
            raise KlingDownloadError(f"Refused to download {shown}: {problem}; {_HOW_TO_ALLOW}")

    def problem(self, url: str) -> str | None:
        """Why ``url`` may not be fetched, or ``None`` when it may."""
        try:
            origin = _origin(url)
        except ValueError:
            return "it is not an http(s) URL"
        if origin is None:
            return "it is not an http(s) URL"
        if origin == _origin(self.api_base_url):
            return None
        scheme, host, port = origin
        allowed = {h.lower() for h in self.allowed_hosts}
        if host in allowed or f"{host}:{port}" in allowed:
            # Listing a host is trusting it: an internal object store may be private and plain http.
            return None
        if scheme != "https":
            return "only https is fetched from hosts other than the API's own"
        try:
            addresses = (self.resolve or resolve_host)(host, port)
        except (OSError, UnicodeError) as err:
            return f"its host {host} could not be resolved ({err})"
        if not addresses:
            return f"its host {host} has no address"
        for address in addresses:
            if not _is_public(address):
                return f"its host {host} resolves to {address}, which is not a public address"
        return None


def _origin(url: str) -> tuple[str, str, int] | None:
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    return parts.scheme, parts.hostname.lower(), parts.port or (443 if parts.scheme == "https" else 80)


def _is_public(address: str) -> bool:
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    # is_global alone lets multicast through.
    return ip.is_global and not (ip.is_multicast or ip.is_reserved or ip.is_link_local or ip.is_loopback)
