"""
GMI Cloud request-queue API: types, validation and response parsing.

This module knows nothing of Airflow, so the hook, the operators, the trigger and the
simulator all agree on one definition of what a valid request and a valid answer are.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import ipaddress
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

DEFAULT_BASE_URL = "https://console.gmicloud.ai"
API_PREFIX = "/api/v1/ie/requestqueue/apikey"
I2V_MODEL = "kling-3.0-turbo-i2v"

RUNNING_STATUSES = frozenset({"created", "queued", "dispatched", "processing"})
SUCCESS_STATUS = "success"
FAILED_STATUSES = frozenset({"failed", "cancelled"})

RESOLUTIONS = ("720p", "1080p")
MIN_DURATION, MAX_DURATION = 3, 15
MAX_PROMPT_CHARS = 2500
MAX_IMAGE_BYTES = 10 * 1024 * 1024

# USD per second of output video, by model and resolution (GMI's published prices).
PRICES_PER_SECOND: dict[str, dict[str, float]] = {
    "kling-3.0-turbo-i2v": {"720p": 0.112, "1080p": 0.14},
    "kling-3.0-turbo-t2v": {"720p": 0.112, "1080p": 0.14},
}

Outcome = Literal["running", "success", "failed"]


class KlingError(Exception):
    """Base class of every error this provider raises about the Kling API."""


class KlingValidationError(KlingError, ValueError):
    """
    A value the user supplied cannot be sent to the API.

    Raised before any HTTP call, so nothing is paid for. ``field`` names the offending
    argument so a message in the Airflow UI points straight at the DAG code to fix.
    """

    def __init__(self, field: str, problem: str, allowed: str) -> None:
        self.field = field
        self.problem = problem
        self.allowed = allowed
        super().__init__(f"Invalid {field}: {problem}. Allowed: {allowed}.")


class KlingAPIError(KlingError):
    """
    The API answered with an HTTP error, or with a body that cannot be understood.

    :param message: what went wrong, in words a user can act on.
    :param status_code: the HTTP status, or ``None`` when no answer was received.
    :param retry_after: seconds the server asked us to wait (rate limits), if any.
    """

    def __init__(
        self, message: str, *, status_code: int | None = None, retry_after: float | None = None
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.retry_after = retry_after


def classify_status(status: str) -> Outcome:
    """
    Map an API status to running, success or failed.

    An unknown status counts as running: the API may add states, and every wait has a
    deadline, so guessing "still running" costs at most a timeout, never a false success.
    """
    normalized = status.strip().lower()
    if normalized == SUCCESS_STATUS:
        return "success"
    if normalized in FAILED_STATUSES:
        return "failed"
    return "running"


def is_known_status(status: str) -> bool:
    normalized = status.strip().lower()
    return normalized in RUNNING_STATUSES or normalized in FAILED_STATUSES or normalized == SUCCESS_STATUS


@dataclass(frozen=True)
class KlingRequest:
    """
    One request-queue record, normalised from any of the shapes GMI is known to return.

    :param request_id: the id GMI gave the request.
    :param status: the raw status string (see :func:`classify_status`).
    :param model: the model id, when the record names it.
    :param media_urls: output video URLs, from ``outcome.media_urls`` (objects or
        strings) or ``outcome.video_url``; empty unless the request succeeded.
    :param thumbnail_url: the preview image URL, if any.
    :param error: the failure text from ``outcome``, ``error`` or ``reason``, if any.
    :param created_at: creation time (UTC), when the record has it.
    :param updated_at: last update time (UTC), when the record has it.
    :param queued_at: queueing time (UTC), when the record has it.
    :param raw: the record exactly as received.
    """

    request_id: str
    status: str
    model: str | None = None
    media_urls: list[str] = field(default_factory=list)
    thumbnail_url: str | None = None
    error: str | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    queued_at: datetime | None = None
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False)

    @property
    def outcome(self) -> Outcome:
        return classify_status(self.status)

    @property
    def is_terminal(self) -> bool:
        return self.outcome != "running"

    @classmethod
    def from_record(cls, record: Any) -> KlingRequest:
        """Parse a record; a record without ``request_id`` or ``status`` raises :class:`KlingAPIError`."""
        if not isinstance(record, Mapping):
            raise KlingAPIError(f"Expected a JSON object for a request record, got {_describe(record)}")
        request_id = record.get("request_id")
        status = record.get("status")
        if not isinstance(request_id, str) or not request_id:
            raise KlingAPIError(f"The API answered without a request_id: {_truncate(record)}")
        if not isinstance(status, str) or not status:
            raise KlingAPIError(f"The API answered without a status for request {request_id}")
        outcome = record.get("outcome")
        model = record.get("model")
        return cls(
            request_id=request_id,
            status=status.strip().lower(),
            model=model if isinstance(model, str) else None,
            media_urls=extract_media_urls(outcome),
            thumbnail_url=_thumbnail(outcome),
            error=extract_error(record),
            created_at=_timestamp(record.get("created_at")),
            updated_at=_timestamp(record.get("updated_at")),
            queued_at=_timestamp(record.get("queued_at")),
            raw=dict(record),
        )

    def to_result(self) -> dict[str, Any]:
        """The JSON-safe dict the sensor returns to XCom."""
        outcome = self.raw.get("outcome")
        return {
            "request_id": self.request_id,
            "status": self.status,
            "media_urls": list(self.media_urls),
            "outcome": outcome if isinstance(outcome, dict) else {},
        }


def extract_media_urls(outcome: Any) -> list[str]:
    """Every output URL in an outcome, whichever documented shape it takes."""
    if not isinstance(outcome, Mapping):
        return []
    urls: list[str] = []
    media = outcome.get("media_urls")
    if isinstance(media, list):
        for item in media:
            if isinstance(item, str):
                urls.append(item)
            elif isinstance(item, Mapping) and isinstance(item.get("url"), str):
                urls.append(item["url"])
    elif isinstance(media, str):
        urls.append(media)
    video_url = outcome.get("video_url")
    if isinstance(video_url, str) and video_url not in urls:
        urls.append(video_url)
    return [u for u in urls if u]


def extract_error(record: Mapping[str, Any]) -> str | None:
    """The failure text, wherever this record keeps it (``outcome``, ``error`` or ``reason``)."""
    for key in ("error", "reason"):
        value = record.get(key)
        if isinstance(value, str) and value:
            return value
        if isinstance(value, Mapping) and value:
            return _truncate(value)
    outcome = record.get("outcome")
    if isinstance(outcome, str) and outcome:
        return outcome
    if isinstance(outcome, Mapping) and not extract_media_urls(outcome):
        for key in ("error", "message", "reason", "detail"):
            value = outcome.get(key)
            if isinstance(value, str) and value:
                return value
        if outcome:
            return _truncate(outcome)
    return None


def _thumbnail(outcome: Any) -> str | None:
    if isinstance(outcome, Mapping):
        value = outcome.get("thumbnail_image_url")
        if isinstance(value, str) and value:
            return value
    return None


def _timestamp(value: Any) -> datetime | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    # Some records carry milliseconds; no real date in seconds passes 1e11 (year 5138).
    seconds = value / 1000 if value > 1e11 else value
    try:
        return datetime.fromtimestamp(seconds, tz=timezone.utc)
    except (OverflowError, OSError, ValueError):
        return None


def _describe(value: Any) -> str:
    return f"{type(value).__name__} {_truncate(value)}"


def _truncate(value: Any, limit: int = 500) -> str:
    text = str(value)
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} chars)"


# ---------------------------------------------------------------------------------------
# Input validation: every check runs before any paid request is sent.
# ---------------------------------------------------------------------------------------


def validate_prompt(prompt: Any) -> str | None:
    if prompt is None:
        return None
    if not isinstance(prompt, str):
        raise KlingValidationError("prompt", f"expected text, got {type(prompt).__name__}", "a string")
    if len(prompt) > MAX_PROMPT_CHARS:
        raise KlingValidationError(
            "prompt", f"{len(prompt)} characters is too long", f"at most {MAX_PROMPT_CHARS} characters"
        )
    return prompt if prompt.strip() else None


def validate_resolution(resolution: Any) -> str:
    allowed = " or ".join(repr(r) for r in RESOLUTIONS)
    if not isinstance(resolution, str):
        raise KlingValidationError("resolution", f"expected text, got {type(resolution).__name__}", allowed)
    normalized = resolution.strip().lower()
    if normalized not in RESOLUTIONS:
        raise KlingValidationError("resolution", f"{resolution!r} is not supported", allowed)
    return normalized


def validate_duration(duration: Any) -> str:
    """Check a duration in seconds and return it as the API wants it: a string."""
    allowed = f"a whole number of seconds from {MIN_DURATION} to {MAX_DURATION}, as an int or numeric string"
    if isinstance(duration, bool):
        raise KlingValidationError("duration", f"{duration!r} is a boolean", allowed)
    if isinstance(duration, float) and duration.is_integer():
        duration = int(duration)
    if isinstance(duration, str):
        text = duration.strip()
        if not re.fullmatch(r"[+-]?\d+", text):
            raise KlingValidationError("duration", f"{duration!r} is not a whole number", allowed)
        duration = int(text)
    if not isinstance(duration, int):
        raise KlingValidationError(
            "duration", f"{duration!r} ({type(duration).__name__}) is not valid", allowed
        )
    if not MIN_DURATION <= duration <= MAX_DURATION:
        raise KlingValidationError("duration", f"{duration} is out of range", allowed)
    return str(duration)


def validate_model(model: Any) -> str:
    if not isinstance(model, str) or not model.strip() or any(c.isspace() for c in model.strip()):
        raise KlingValidationError(
            "model", f"{model!r} is not a model id", "a GMI model id such as 'kling-3.0-turbo-i2v'"
        )
    # Model ids are case-sensitive at GMI, so only surrounding blanks are forgiven.
    return model.strip()


def estimate_cost(model: str, payload: Mapping[str, Any]) -> float | None:
    """
    Estimated price in USD of one request, or ``None`` for a model without a known price.

    Kling bills per second of output, at a rate set by the resolution.
    """
    rates = PRICES_PER_SECOND.get(model)
    if rates is None:
        return None
    rate = rates.get(str(payload.get("resolution", "720p")), rates["720p"])
    return round(int(payload.get("duration", 5)) * rate, 4)


# ---------------------------------------------------------------------------------------
# Images
# ---------------------------------------------------------------------------------------

ImageKind = Literal["jpeg", "png"]
_BASE64_RE = re.compile(r"[A-Za-z0-9+/=\s]+")
_DATA_URI_RE = re.compile(
    r"data:(?P<mime>[\w.+-]+/[\w.+-]+)?(?P<params>(;[^,;]*)*?);base64,(?P<data>.*)", re.S
)


def sniff_image(data: bytes) -> ImageKind | None:
    """The image type by content (magic bytes), not by file name."""
    if data.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    return None


@dataclass(frozen=True)
class EncodedImage:
    """
    An image ready for the ``first_frame`` field, and a loggable description of it.

    The base64 text is kept out of ``repr`` so it never lands in a log by accident.
    """

    kind: ImageKind
    size: int
    sha256: str
    b64: str = field(repr=False)

    def describe(self) -> str:
        return f"{self.kind.upper()} image, {self.size:,} bytes, sha256 {self.sha256[:12]}"


def encode_image(data: bytes, *, source: str, field_name: str = "first_frame") -> EncodedImage:
    """Check that ``data`` is a JPEG or PNG within the size limit, and base64 it."""
    if not data:
        raise KlingValidationError(field_name, f"{source} is empty", "a JPEG or PNG image up to 10 MB")
    if len(data) > MAX_IMAGE_BYTES:
        raise KlingValidationError(
            field_name, f"{source} is {len(data):,} bytes", f"at most {MAX_IMAGE_BYTES:,} bytes (10 MB)"
        )
    kind = sniff_image(data)
    if kind is None:
        raise KlingValidationError(
            field_name, f"{source} is not a JPEG or PNG image (by content)", "a JPEG or PNG image"
        )
    return EncodedImage(
        kind=kind,
        size=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
        b64=base64.b64encode(data).decode("ascii"),
    )


FirstFrameKind = Literal["url", "data_uri", "base64", "path"]


def classify_first_frame(value: str) -> FirstFrameKind:
    """
    Tell how a ``first_frame`` string is meant: URL, data URI, raw base64 or file path.

    Raises for schemes the API cannot fetch (``file://``, ``ftp://``, ...), because GMI
    would accept the request and fail it only after it waited in the queue.
    """
    text = value.strip()
    if not text:
        raise KlingValidationError("first_frame", "it is empty", _FIRST_FRAME_ALLOWED)
    lowered = text[:16].lower()
    if lowered.startswith(("http://", "https://")):
        parts = urlsplit(text)
        if not parts.netloc:
            raise KlingValidationError("first_frame", f"URL {text[:80]!r} has no host", _FIRST_FRAME_ALLOWED)
        return "url"
    if lowered.startswith("data:"):
        return "data_uri"
    if re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*://", text):
        scheme = text.split("://", 1)[0]
        raise KlingValidationError(
            "first_frame",
            f"the {scheme}:// scheme cannot be fetched by GMI",
            _FIRST_FRAME_ALLOWED + "; pass other storage as an ObjectStoragePath",
        )
    # Base64 of a JPEG always starts "/9j/" and of a PNG "iVBORw0KGgo"; no sane path does.
    if text.startswith(("/9j/", "iVBORw0KGgo")):
        return "base64"
    if len(text) >= 256 and "\n" not in text[:256] and _BASE64_RE.fullmatch(text[:4096]) and "." not in text:
        return "base64"
    return "path"


_FIRST_FRAME_ALLOWED = (
    "an http(s) URL, a base64 string or data:image/jpeg|png URI, a local file path, bytes, "
    "or an ObjectStoragePath"
)


def decode_base64_image(value: str) -> EncodedImage:
    """Decode a raw base64 string or ``data:`` URI and check that it holds a JPEG or PNG."""
    text = value.strip()
    source = "the base64 string"
    if text[:5].lower() == "data:":
        match = _DATA_URI_RE.fullmatch(text)
        if not match:
            raise KlingValidationError(
                "first_frame", "the data URI is not base64-encoded", "data:image/jpeg;base64,... or image/png"
            )
        mime = (match.group("mime") or "").lower()
        if mime not in ("image/jpeg", "image/jpg", "image/png"):
            raise KlingValidationError(
                "first_frame", f"the data URI has type {mime or 'none'!r}", "image/jpeg or image/png"
            )
        text, source = match.group("data"), "the data URI"
    try:
        data = base64.b64decode("".join(text.split()), validate=True)
    except (binascii.Error, ValueError) as err:
        raise KlingValidationError(
            "first_frame", f"{source} is not valid base64 ({err})", "standard base64 of a JPEG or PNG image"
        ) from None
    return encode_image(data, source=source)


# ---------------------------------------------------------------------------------------
# Connection settings
# ---------------------------------------------------------------------------------------


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


def prepare_first_frame(value: Any) -> tuple[str, str]:
    """
    Turn any accepted ``first_frame`` into what the API takes, and a loggable description.

    URLs are sent as they are; everything else is read, checked to be a JPEG or PNG and
    sent as raw base64 (GMI does not document whether it accepts a ``data:`` prefix).
    The description, never the base64, is what may be logged.

    :param value: an http(s) URL, base64 text or ``data:`` URI, a local path (``str`` or
        ``os.PathLike``), ``bytes``, or any object with ``read_bytes()`` such as
        Airflow's ``ObjectStoragePath``.
    """
    if isinstance(value, bytes | bytearray | memoryview):
        image = encode_image(bytes(value), source="the bytes given")
        return image.b64, image.describe()
    if isinstance(value, str):
        kind = classify_first_frame(value)
        if kind == "url":
            return value.strip(), f"URL {value.strip()}"
        if kind in ("base64", "data_uri"):
            image = decode_base64_image(value)
            return image.b64, image.describe()
        value = Path(value.strip()).expanduser()
    if isinstance(value, os.PathLike) and not hasattr(value, "read_bytes"):
        value = Path(value)
    if hasattr(value, "read_bytes"):
        image = _read_image(value)
        return image.b64, f"{image.describe()} from {value}"
    raise KlingValidationError(
        "first_frame", f"a {type(value).__name__} is not supported", _FIRST_FRAME_ALLOWED
    )


def _read_image(path: Any) -> EncodedImage:
    source = f"file {str(path)[:200]}"
    try:
        if not path.exists():
            raise KlingValidationError("first_frame", f"{source} does not exist", _FIRST_FRAME_ALLOWED)
        if path.is_dir():
            raise KlingValidationError("first_frame", f"{source} is a directory", "a JPEG or PNG file")
        size = path.stat().st_size
        # Check the size before reading, so a huge file is refused without loading it.
        if size > MAX_IMAGE_BYTES:
            raise KlingValidationError(
                "first_frame", f"{source} is {size:,} bytes", f"at most {MAX_IMAGE_BYTES:,} bytes (10 MB)"
            )
        data = path.read_bytes()
    except OSError as err:
        raise KlingValidationError(
            "first_frame", f"{source} cannot be read ({err.strerror or err})", "a readable JPEG or PNG file"
        ) from None
    return encode_image(data, source=source)
