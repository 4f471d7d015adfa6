"""
Which video URLs the provider fetches: GMI's answer names them, so a hostile or broken answer
must not turn a download into a request to the worker's own network.

A URL is fetched when it is on the API's own origin (the simulator serves media there), on a
host the connection lists in ``allowed_media_hosts``, or over https to a host whose every
address is public. Each redirect hop is checked the same way before it is followed.

The check and the connection read the same value: the URL is parsed once into a
:class:`~airflow_provider_kling.transport.urls.FetchURL`, its host resolved once here, and the
download connects only to the addresses checked (``transport.pinning``).
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from airflow_provider_kling.exceptions import KlingDownloadError, KlingTransportError
from airflow_provider_kling.transport.urls import (
    URL_FORM,
    FetchURL,
    parse_authority,
    parse_fetch_url,
)

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
class CheckedURL:
    """A URL the policy lets through, and the only addresses its connection may go to."""

    url: FetchURL
    addresses: tuple[str, ...]


@dataclass(frozen=True)
class FetchPolicy:
    """
    :param api_base_url: the connection's base URL: its origin is always allowed.
    :param allowed_hosts: ``name`` or ``name:port`` entries fetched at any address, over http too.
    :param resolve: host and port to addresses, called once per URL checked;
        :func:`resolve_host` by default.
    """

    api_base_url: str
    allowed_hosts: Sequence[str] = ()
    resolve: Callable[[str, int], list[str]] | None = field(default=None, compare=False)

    def check(self, url: str | FetchURL, *, source: str | None = None) -> CheckedURL:
        """
        The URL as it will be connected to, with the addresses checked for it.

        :param url: the URL, as given or as a redirect resolved it.
        :param source: the URL that redirected to this one, for messages.
        :raises KlingDownloadError: the URL is refused, naming it, why and what to do.
        """
        shown = _shown(url if isinstance(url, str) else url.url)
        hop = f" (a redirect from {_shown(source)})" if source else ""
        try:
            parsed = url if isinstance(url, FetchURL) else parse_fetch_url(url)
        except ValueError as err:
            raise KlingDownloadError(
                f"Refused to download {shown}{hop}: {err}. Allowed: {URL_FORM}"
            ) from None
        trusted = self._trusted(parsed)
        if not trusted and parsed.scheme != "https":
            raise self._refused(shown + hop, "only https is fetched from hosts other than the API's own")
        addresses = self._addresses(parsed, shown, trusted)
        if not trusted:
            for address in addresses:
                if not _is_public(address):
                    raise self._refused(
                        shown + hop,
                        f"its host {parsed.host} resolves to {address}, which is not a public address",
                    )
        return CheckedURL(parsed, addresses)

    def _trusted(self, url: FetchURL) -> bool:
        try:
            if url.origin == parse_fetch_url(self.api_base_url).origin:
                return True
        except ValueError:
            pass
        # Listing a host is trusting it: an internal object store may be private and plain http.
        return (url.host, 0) in self._allowed or (url.host, url.port) in self._allowed

    @property
    def _allowed(self) -> set[tuple[str, int]]:
        """Each entry as host and port, 0 for any port; one no URL can name matches nothing."""
        allowed: set[tuple[str, int]] = set()
        for entry in self.allowed_hosts:
            try:
                allowed.add(parse_authority(entry.strip().lower(), 0))
            except ValueError:
                continue
        return allowed

    def _addresses(self, url: FetchURL, shown: str, trusted: bool) -> tuple[str, ...]:
        try:
            ipaddress.ip_address(url.host)
        except ValueError:
            pass
        else:
            return (url.host,)
        try:
            found = (self.resolve or resolve_host)(url.host, url.port)
        except (OSError, UnicodeError) as err:
            if trusted:
                # What connecting would have said: a name that does not resolve may resolve later.
                raise KlingTransportError(
                    f"download {shown}: its host {url.host} could not be resolved ({err})", sent=False
                ) from None
            raise self._refused(shown, f"its host {url.host} could not be resolved ({err})") from None
        addresses = tuple(dict.fromkeys(found))
        if not addresses:
            raise self._refused(shown, f"its host {url.host} has no address")
        return addresses

    @staticmethod
    def _refused(shown: str, problem: str) -> KlingDownloadError:
        return KlingDownloadError(f"Refused to download {shown}: {problem}; {_HOW_TO_ALLOW}")


def _shown(url: str) -> str:
    text = url if len(url) <= 200 else url[:200] + "..."
    # A URL refused for a control character is shown with it escaped, not acted on by a terminal.
    return text if text.isprintable() and text.isascii() else repr(text)


def _is_public(address: str) -> bool:
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    # is_global alone lets multicast through.
    return ip.is_global and not (ip.is_multicast or ip.is_reserved or ip.is_link_local or ip.is_loopback)
