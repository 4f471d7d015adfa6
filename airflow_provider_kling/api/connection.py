"""What a ``kling`` connection resolves to, refusing settings that would leak the key."""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from airflow_provider_kling.api.errors import KlingValidationError
from airflow_provider_kling.api.redaction import key_forms
from airflow_provider_kling.api.validation import validate_seconds

DEFAULT_BASE_URL = "https://console.gmicloud.ai"
DEFAULT_PORTS = {"https": 443, "http": 80}
API_PREFIX = "/api/v1/ie/requestqueue/apikey"


@dataclass(frozen=True)
class ConnectionSettings:
    """
    What a ``kling`` connection resolves to.

    :param api_key: the GMI API key (kept out of ``repr``).
    :param base_url: scheme and host, without the API path.
    :param organization_id: sent as ``X-Organization-ID`` for multi-organization accounts.
    :param timeout: seconds one HTTP answer may take, start to end.
    :param allowed_media_hosts: hosts (``name`` or ``name:port``, lower case) whose videos are
        fetched even where the fetch policy would refuse them (see :doc:`/downloads`).
    :param key_as_stored: the API key exactly as the connection holds it, before stripping,
        so redaction also catches an echo of the unstripped form.
    """

    api_key: str = field(repr=False)
    base_url: str = DEFAULT_BASE_URL
    organization_id: str | None = None
    timeout: float = 30.0
    allowed_media_hosts: tuple[str, ...] = ()
    key_as_stored: str | None = field(default=None, repr=False)

    @property
    def secrets(self) -> tuple[str, ...]:
        """Every form of the key a server might echo, as ``api.redaction.key_forms`` lists them."""
        return key_forms((self.api_key, self.key_as_stored))

    @property
    def api_url(self) -> str:
        return self.base_url + API_PREFIX

    def headers(self, user_agent: str) -> dict[str, str]:
        headers = {
            "Authorization": f"Bearer {self.api_key}",
            "Content-Type": "application/json",
            "Accept": "application/json",
            "User-Agent": user_agent,
        }
        if self.organization_id:
            headers["X-Organization-ID"] = self.organization_id
        return headers


def connection_settings(
    *,
    conn_id: str,
    password: str | None,
    host: str | None,
    schema: str | None = None,
    port: int | None = None,
    extra: Mapping[str, Any] | None = None,
    raw_extra: str | None = None,
) -> ConnectionSettings:
    """
    Build settings from a connection's fields, refusing anything that would leak the key.

    Plain ``http://`` is allowed only for loopback hosts (the local simulator), since the
    key travels in a header on every call.

    :param raw_extra: the connection's ``extra`` as stored. Airflow's ``extra_dejson`` reads
        invalid JSON as ``{}`` with only a log line, which would silently drop the timeout
        and the organization; given the raw text, invalid JSON is refused instead.
    """
    where = f"connection {conn_id!r}"
    if not password or not password.strip():
        raise KlingValidationError(
            f"{where} password", "the API key is missing", "your GMI Cloud API key in the Password field"
        )
    key = password.strip()
    if (problem := _key_problem(key)) is not None:
        raise KlingValidationError(
            f"{where} password",
            problem,
            "the key exactly as GMI Cloud shows it, in the Password field: printable ASCII, no spaces",
        )
    extra = _extra(where, extra, raw_extra)
    base_url = _base_url(where, host, schema, port)
    timeout = extra.get("timeout")
    # The connection form saves a blank optional field as null (or "").
    timeout = (
        30.0
        if timeout is None or timeout == ""
        else validate_seconds(timeout, f"{where} extra 'timeout'", maximum=3600)
    )
    org = extra.get("organization_id")
    if org is not None and not isinstance(org, str):
        raise KlingValidationError(
            f"{where} extra 'organization_id'",
            f"{type(org).__name__} is not text",
            "your GMI organization id",
        )
    org = (org or "").strip() or None
    if org is not None and _has_control(org):
        raise KlingValidationError(
            f"{where} extra 'organization_id'",
            "it contains a control character (a line break, a tab, ...)",
            "your GMI organization id, on one line",
        )
    return ConnectionSettings(
        api_key=key,
        base_url=base_url,
        organization_id=org,
        timeout=timeout,
        allowed_media_hosts=_media_hosts(where, extra.get("allowed_media_hosts")),
        key_as_stored=password,
    )


def _key_problem(key: str) -> str | None:
    """What is wrong with a stripped key, never quoting it (the message reaches logs and the UI)."""
    # A space inside is a paste gone wrong (two keys, a label); a CR/LF would let the value add
    # headers of its own; a non-ASCII character cannot travel in a header at all.
    for position, char in enumerate(key, start=1):
        if _has_control(char):
            return f"the API key contains a control character (character {position} of {len(key)})"
        if char.isspace():
            return f"the API key contains a space or other blank (character {position} of {len(key)})"
        if not char.isascii():
            return f"the API key contains a non-ASCII character (character {position} of {len(key)})"
    return None


def _has_control(text: str) -> bool:
    # A CR/LF in a header value would let a stored value add headers of its own.
    return any(ord(c) < 32 or ord(c) == 127 for c in text)


def _extra(where: str, extra: Mapping[str, Any] | None, raw_extra: str | None) -> dict[str, Any]:
    if raw_extra is not None and raw_extra.strip():
        try:
            parsed = json.loads(raw_extra)
        except ValueError as err:
            raise KlingValidationError(
                f"{where} extra", f"it is not valid JSON ({err})", 'a JSON object such as {"timeout": 60}'
            ) from None
        if not isinstance(parsed, dict):
            raise KlingValidationError(
                f"{where} extra",
                f"JSON {type(parsed).__name__} is not an object",
                'a JSON object such as {"timeout": 60}',
            )
    return dict(extra or {})


def _media_hosts(where: str, value: Any) -> tuple[str, ...]:
    allowed = (
        "host names, optionally with a port (media.example.com, minio.internal:9000), "
        "as a list or comma-separated"
    )
    if value is None or value == "":
        return ()
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, list | tuple) or not all(isinstance(i, str) for i in items):
        raise KlingValidationError(
            f"{where} extra 'allowed_media_hosts'", f"{value!r} is not a list of hosts", allowed
        )
    hosts: list[str] = []
    for item in (i.strip().lower() for i in items):
        if not item:
            continue
        try:
            parts = urlsplit(f"//{item}")
            valid = bool(parts.hostname) and parts.netloc == item and not parts.username
            parts.port  # noqa: B018 - raises on a port that is not a number
        except ValueError:
            valid = False
        if not valid or _has_control(item):
            raise KlingValidationError(
                f"{where} extra 'allowed_media_hosts'", f"{item!r} is not a host", allowed
            )
        hosts.append(item)
    return tuple(hosts)


def _base_url(where: str, host: str | None, schema: str | None, port: int | None) -> str:
    host = (host or "").strip()
    if not host:
        if port:
            _check_port(where, port, DEFAULT_PORTS["https"])
        return DEFAULT_BASE_URL
    if "://" not in host:
        host = f"{schema or 'https'}://{host}"
    parts = urlsplit(host)
    allowed = "https://<host>, or http:// only for a loopback host (127.0.0.1, localhost, ::1)"
    if "@" in parts.netloc:
        # requests would send user:pass@ as Basic auth to the host, beside the key.
        raise KlingValidationError(
            f"{where} host",
            "it holds credentials (user:password@)",
            f"{allowed}, with the key in the Password field",
        )
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise KlingValidationError(f"{where} host", f"{host!r} is not an http(s) URL", allowed)
    if parts.scheme == "http" and not _is_loopback(parts.hostname):
        raise KlingValidationError(
            f"{where} host", f"plain http to {parts.hostname} would send the API key unencrypted", allowed
        )
    netloc = parts.netloc
    if port:
        _check_port(where, port, parts.port)
        # 443/80 in the Port field only lets Airflow 3.3.2's Test button work (see
        # docs/troubleshooting.rst); the URL keeps its default port so origins compare equal.
        if parts.port is None and port != DEFAULT_PORTS[parts.scheme]:
            netloc = f"{netloc}:{port}"
    # A host pasted with the API path still works: the client adds the path itself.
    path = parts.path.rstrip("/")
    if path.endswith(API_PREFIX):
        path = path[: -len(API_PREFIX)]
    return f"{parts.scheme}://{netloc}{path}"


def _check_port(where: str, port: int, in_host: int | None) -> None:
    if not 0 < port < 65536:
        raise KlingValidationError(f"{where} port", f"{port} is not a TCP port", "1 to 65535, or empty")
    if in_host is not None and in_host != port:
        raise KlingValidationError(
            f"{where} port",
            f"{port} differs from the port in the Base URL ({in_host})",
            "the Base URL's own port, or empty",
        )


def _is_loopback(hostname: str) -> bool:
    if hostname.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(hostname).is_loopback
    except ValueError:
        return False
