"""
One reading of a URL a download fetches, shared by the fetch policy and the HTTP client.

Python's ``urlsplit``, urllib3 (under requests) and httpx read some URLs differently:
``http://10.0.0.1:80\\@media.example/v.mp4`` is media.example to ``urlsplit`` and 10.0.0.1 to
urllib3. So a URL is parsed once, strictly, into a :class:`FetchURL`; the policy checks that
value and the client requests :attr:`FetchURL.url`, rebuilt from it in a form every parser
reads alike. Whatever the parsers could read two ways is refused, never guessed.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

#: The port each fetched scheme implies.
DEFAULT_PORTS = {"http": 80, "https": 443}

#: The form a fetched URL must have, for messages.
URL_FORM = (
    "http(s)://host[:port]/path?query with an ASCII host name (an international one in its "
    "xn-- form), a dotted IPv4 address or a bracketed IPv6 address, and no user@, backslash, "
    "space or control character (%-encode them)"
)

_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*):")
_LABEL = re.compile(r"[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?")
# A last label like these makes browsers and httpx read the host as an IPv4 address (WHATWG).
_NUMERIC = re.compile(r"0x[0-9a-f]*|[0-9]+")
_PORT = re.compile(r"[0-9]{1,5}")
# Ends a URL's authority for urlsplit, urllib3 and httpx alike, once backslashes are refused.
_AUTHORITY_END = re.compile(r"[/?#]")
_OUTER_SPACE = " \t\r\n\f\v"


@dataclass(frozen=True)
class FetchURL:
    """
    A URL as the download connects to it.

    :param scheme: ``http`` or ``https``.
    :param host: lower case; an IPv6 address without brackets, compressed.
    :param port: always set, the scheme's default when the URL names none.
    :param target: path and query as sent in the request line, starting with ``/``.
    """

    scheme: str
    host: str
    port: int
    target: str

    @property
    def origin(self) -> tuple[str, str, int]:
        return self.scheme, self.host, self.port

    @property
    def authority(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port == DEFAULT_PORTS[self.scheme] else f"{host}:{self.port}"

    @property
    def url(self) -> str:
        """The URL the client requests: one that every parser reads as this value."""
        return f"{self.scheme}://{self.authority}{self.target}"

    def join(self, location: str) -> FetchURL:
        """A redirect's ``Location`` resolved against this URL, read as strictly as the first URL."""
        from urllib.parse import urljoin

        text = location.strip(_OUTER_SPACE)
        # urljoin silently drops tabs and newlines; refuse them before it sees them.
        _check_characters(text)
        return parse_fetch_url(urljoin(self.url, text))


def parse_fetch_url(text: str) -> FetchURL:
    """
    Read ``text`` as a URL to fetch, or refuse it.

    :raises ValueError: it is not an http(s) URL, or it holds something the HTTP parsers read
        differently (userinfo, a backslash, a control character, a host in an unusual spelling).
    """
    text = text.strip(_OUTER_SPACE)
    _check_characters(text)
    scheme_match = _SCHEME.match(text)
    if scheme_match is None or scheme_match.group(1).lower() not in DEFAULT_PORTS:
        raise ValueError("it is not an http(s) URL")
    scheme = scheme_match.group(1).lower()
    rest = text[scheme_match.end() :]
    if not rest.startswith("//"):
        raise ValueError(f"'//' must follow '{scheme}:'")
    rest = rest[2:]
    end = _AUTHORITY_END.search(rest)
    authority, tail = (rest[: end.start()], rest[end.start() :]) if end else (rest, "")
    target = tail.split("#", 1)[0]
    if not target.startswith("/"):
        target = "/" + target
    host, port = parse_authority(authority, DEFAULT_PORTS[scheme])
    return FetchURL(scheme=scheme, host=host, port=port, target=target)


def parse_authority(authority: str, default_port: int) -> tuple[str, int]:
    """The host and port of ``host[:port]``, strictly (see :func:`parse_fetch_url`)."""
    if "@" in authority:
        raise ValueError("it holds a user name or password (user@host), which is never sent")
    if "%" in authority:
        raise ValueError("its host is %-encoded or has an IPv6 zone id (%...)")
    if authority.startswith("["):
        close = authority.find("]")
        if close < 0:
            raise ValueError("its IPv6 address has no closing ']'")
        host, after = _ipv6(authority[1:close]), authority[close + 1 :]
        if after and not after.startswith(":"):
            raise ValueError(f"{after!r} follows its IPv6 address")
        port_text = after[1:] if after else None
    else:
        name, colon, port_text_or_empty = authority.partition(":")
        host, port_text = _name(name), (port_text_or_empty if colon else None)
    if port_text is None:
        return host, default_port
    if not _PORT.fullmatch(port_text) or not 0 < int(port_text) < 65536:
        raise ValueError(f"its port {port_text!r} is not a number from 1 to 65535")
    return host, int(port_text)


def _check_characters(text: str) -> None:
    for char in text:
        if char == "\\":
            raise ValueError("it holds a backslash, which HTTP clients read in different ways")
        if char == " ":
            raise ValueError("it holds a space (%-encode it as %20)")
        if ord(char) < 32 or ord(char) == 127:
            raise ValueError(f"it holds the control character {char!r}, which some parsers drop")
        if ord(char) > 127:
            raise ValueError(f"it holds the non-ASCII character {char!r} (%-encode it)")


def _ipv6(text: str) -> str:
    try:
        return str(ipaddress.IPv6Address(text))
    except ValueError:
        raise ValueError(f"[{text}] is not an IPv6 address") from None


def _name(text: str) -> str:
    host = text.lower()
    if not host:
        raise ValueError("it has no host")
    if host.endswith("."):
        raise ValueError(f"its host {host!r} ends in a dot; give it without")
    labels = host.split(".")
    if len(host) > 253 or not all(_LABEL.fullmatch(label) for label in labels):
        raise ValueError(f"its host {host!r} is not a host name")
    if _NUMERIC.fullmatch(labels[-1]):
        # 127.1, 0x7f.0.0.1, 0177.0.0.1 and 2130706433 are all loopback to some parser.
        try:
            canonical = str(ipaddress.IPv4Address(host))
        except ValueError:
            canonical = ""
        if canonical != host:
            raise ValueError(f"its host {host!r} is not a dotted IPv4 address (such as 10.0.0.1)")
    return host
