"""What a ``kling`` connection resolves to, refusing settings that would leak the key."""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from airflow_provider_kling.api.errors import KlingValidationError

DEFAULT_BASE_URL = "https://console.gmicloud.ai"
API_PREFIX = "/api/v1/ie/requestqueue/apikey"


@dataclass(frozen=True)
class ConnectionSettings:
    """
    What a ``kling`` connection resolves to.

    :param api_key: the GMI API key (kept out of ``repr``).
    :param base_url: scheme and host, without the API path.
    :param organization_id: sent as ``X-Organization-ID`` for multi-organization accounts.
    :param timeout: seconds to wait for one HTTP answer.
    """

    api_key: str = field(repr=False)
    base_url: str = DEFAULT_BASE_URL
    organization_id: str | None = None
    timeout: float = 30.0

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
) -> ConnectionSettings:
    """
    Build settings from a connection's fields, refusing anything that would leak the key.

    Plain ``http://`` is allowed only for loopback hosts (the local simulator), since the
    key travels in a header on every call.
    """
    where = f"connection {conn_id!r}"
    if not password or not password.strip():
        raise KlingValidationError(
            f"{where} password", "the API key is missing", "your GMI Cloud API key in the Password field"
        )
    extra = dict(extra or {})
    base_url = _base_url(where, host, schema, port)
    timeout = extra.get("timeout")
    if timeout is None or timeout == "":
        # The connection form saves a blank optional field as null (or "").
        timeout = 30.0
    try:
        timeout = float(timeout)
    except (TypeError, ValueError):
        timeout = -1.0
    if not 0 < timeout <= 3600:
        raise KlingValidationError(
            f"{where} extra 'timeout'",
            f"{extra.get('timeout')!r} is not valid",
            "seconds, above 0 and up to 3600",
        )
    org = extra.get("organization_id")
    if org is not None and not isinstance(org, str):
        raise KlingValidationError(
            f"{where} extra 'organization_id'",
            f"{type(org).__name__} is not text",
            "your GMI organization id",
        )
    return ConnectionSettings(
        api_key=password.strip(),
        base_url=base_url,
        organization_id=(org or "").strip() or None,
        timeout=timeout,
    )


def _base_url(where: str, host: str | None, schema: str | None, port: int | None) -> str:
    host = (host or "").strip()
    if not host:
        return DEFAULT_BASE_URL
    if "://" not in host:
        host = f"{schema or 'https'}://{host}"
    parts = urlsplit(host)
    allowed = "https://<host>, or http:// only for a loopback host (127.0.0.1, localhost, ::1)"
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise KlingValidationError(f"{where} host", f"{host!r} is not an http(s) URL", allowed)
    if parts.scheme == "http" and not _is_loopback(parts.hostname):
        raise KlingValidationError(
            f"{where} host", f"plain http to {parts.hostname} would send the API key unencrypted", allowed
        )
    netloc = parts.netloc
    if port and parts.port is None:
        netloc = f"{netloc}:{port}"
    # A host pasted with the API path still works: the client adds the path itself.
    path = parts.path.rstrip("/")
    if path.endswith(API_PREFIX):
        path = path[: -len(API_PREFIX)]
    return f"{parts.scheme}://{netloc}{path}"


def _is_loopback(hostname: str) -> bool:
    if hostname.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(hostname).is_loopback
    except ValueError:
        return False
