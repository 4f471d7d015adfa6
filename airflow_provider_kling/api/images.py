"""The first frame: every accepted form, checked to be a JPEG or PNG, sent as the API takes it."""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from airflow_provider_kling.api.dimensions import check_image_size
from airflow_provider_kling.api.errors import KlingValidationError
from airflow_provider_kling.api.filetypes import image_brand

MAX_IMAGE_BYTES = 10 * 1024 * 1024

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


def other_image_format(data: bytes) -> str | None:
    """The name of an image format GMI does not take (WebP, GIF, ...), if the bytes are one."""
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WebP"
    if (brand := image_brand(data)) is not None:
        return brand
    formats = {b"GIF87a": "GIF", b"GIF89a": "GIF", b"BM": "BMP", b"II*\x00": "TIFF", b"MM\x00*": "TIFF"}
    return next((name for magic, name in formats.items() if data.startswith(magic)), None)


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
    width: int = 0
    height: int = 0

    def describe(self) -> str:
        """A one-line description for logs: type, pixel size, bytes and a short hash."""
        return (
            f"{self.kind.upper()} image {self.width}x{self.height}, {self.size:,} bytes, "
            f"sha256 {self.sha256[:12]}"
        )


def encode_image(data: bytes, *, source: str, field_name: str = "first_frame") -> EncodedImage:
    """
    Check that ``data`` is a JPEG or PNG within GMI's published limits, and base64 it.

    The limits: at most 10 MB, each side at least 300 px, aspect ratio between 1:2.5 and
    2.5:1 (width and height are read from the header).

    :param data: the image file.
    :param source: where it came from, for error messages.
    :param field_name: the payload field it is for, for error messages.
    """
    image = _check_image(data, source=source, field_name=field_name)
    return replace(image, b64=base64.b64encode(data).decode("ascii"))


def check_image(data: bytes, *, source: str, field_name: str = "first_frame") -> EncodedImage:
    """
    The checks of :func:`encode_image` without the base64: for a caller that only decides
    whether a file would be accepted (the drop-folder trigger, before anything is paid for).
    The result's ``b64`` is empty.
    """
    return _check_image(data, source=source, field_name=field_name)


def _check_image(data: bytes, *, source: str, field_name: str) -> EncodedImage:
    """The checks of :func:`encode_image`; the result's base64 is left for the caller to fill."""
    if not data:
        raise KlingValidationError(field_name, f"{source} is empty", "a JPEG or PNG image up to 10 MB")
    if len(data) > MAX_IMAGE_BYTES:
        raise KlingValidationError(
            field_name, f"{source} is {len(data):,} bytes", f"at most {MAX_IMAGE_BYTES:,} bytes (10 MB)"
        )
    kind = sniff_image(data)
    if kind is None:
        other = other_image_format(data)
        problem = f"{source} is a {other} image (by content), whatever its name says" if other else None
        raise KlingValidationError(
            field_name,
            problem or f"{source} is not a JPEG or PNG image (by content)",
            "a JPEG or PNG image" + (f"; convert the {other} file to PNG or JPEG first" if other else ""),
        )
    width, height = check_image_size(data, source=source, field_name=field_name)
    return EncodedImage(
        kind=kind, width=width, height=height, size=len(data), sha256=hashlib.sha256(data).hexdigest(), b64=""
    )


FirstFrameKind = Literal["url", "data_uri", "base64", "path"]


def classify_first_frame(value: str, *, field_name: str = "first_frame") -> FirstFrameKind:
    """
    Tell how a ``first_frame`` string is meant: URL, data URI, raw base64 or file path.

    Raises for schemes the API cannot fetch (``file://``, ``ftp://``, ...), because GMI
    would accept the request and fail it only after it waited in the queue.

    :param value: the string given for the image.
    :param field_name: the payload field it is for, for error messages.
    """
    text = value.strip()
    if not text:
        raise KlingValidationError(field_name, "it is empty", _FIRST_FRAME_ALLOWED)
    lowered = text[:16].lower()
    if lowered.startswith(("http://", "https://")):
        _check_url(text, field_name)
        return "url"
    if lowered.startswith("data:"):
        return "data_uri"
    if re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*://", text):
        scheme = text.split("://", 1)[0]
        raise KlingValidationError(
            field_name,
            f"the {scheme}:// scheme cannot be fetched by GMI",
            _FIRST_FRAME_ALLOWED + "; pass other storage as an ObjectStoragePath",
        )
    # Base64 of a JPEG always starts "/9j/" and of a PNG "iVBORw0KGgo"; no sane path does.
    if text.startswith(("/9j/", "iVBORw0KGgo")):
        return "base64"
    if len(text) >= 256 and "\n" not in text[:256] and _BASE64_RE.fullmatch(text[:4096]) and "." not in text:
        return "base64"
    return "path"


_HOST = re.compile(r"[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)*\.?")


def _check_url(text: str, field_name: str) -> None:
    # GMI fetches the URL only after the request waited in the queue: refuse here what it cannot fetch.
    allowed = "an http(s) URL with a host name, its spaces and other special characters %-encoded"
    shown = repr(text[:80])
    if bad := next((c for c in text if c.isspace() or ord(c) < 32 or ord(c) == 127), None):
        raise KlingValidationError(field_name, f"URL {shown} contains {bad!r}", allowed)
    try:
        parts = urlsplit(text)
        host, _ = parts.hostname, parts.port
    except ValueError as err:
        raise KlingValidationError(field_name, f"URL {shown} cannot be parsed ({err})", allowed) from None
    if not host:
        raise KlingValidationError(field_name, f"URL {shown} has no host", allowed)
    if not (_HOST.fullmatch(host) or _is_ip(host)):
        raise KlingValidationError(field_name, f"URL {shown} has an invalid host {host[:60]!r}", allowed)


def _is_ip(host: str) -> bool:
    import ipaddress

    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


_FIRST_FRAME_ALLOWED = (
    "an http(s) URL, a base64 string or data:image/jpeg|png URI, a local file path, bytes, "
    "or an ObjectStoragePath"
)


def decode_base64_image(value: str, *, field_name: str = "first_frame") -> EncodedImage:
    """
    Decode a raw base64 string or ``data:`` URI and check that it holds a valid JPEG or PNG.

    :param value: the base64 text or data URI.
    :param field_name: the payload field it is for, for error messages.
    """
    text = value.strip()
    source = "the base64 string"
    if text[:5].lower() == "data:":
        match = _DATA_URI_RE.fullmatch(text)
        if not match:
            raise KlingValidationError(
                field_name, "the data URI is not base64-encoded", "data:image/jpeg;base64,... or image/png"
            )
        mime = (match.group("mime") or "").lower()
        if mime not in ("image/jpeg", "image/jpg", "image/png"):
            raise KlingValidationError(
                field_name, f"the data URI has type {mime or 'none'!r}", "image/jpeg or image/png"
            )
        text, source = match.group("data"), "the data URI"
    try:
        data = base64.b64decode("".join(text.split()), validate=True)
    except (binascii.Error, ValueError) as err:
        raise KlingValidationError(
            field_name, f"{source} is not valid base64 ({err})", "standard base64 of a JPEG or PNG image"
        ) from None
    return encode_image(data, source=source, field_name=field_name)


@dataclass(frozen=True)
class FirstFrame:
    """
    An image field read once: what to send, what to log, and the name a video may carry.

    :param data: the URL as given, or the image's raw base64 (kept out of ``repr``).
    :param description: a loggable line (type, pixel size, bytes and a short hash, or the URL).
    :param name: the image's file name without its suffix (see :func:`image_stem`).
    :param source: where it was read from, as given (a URL, a path or an object such as an
        ``ObjectStoragePath``), for lineage; ``None`` for an inline image.
    """

    data: str = field(repr=False)
    description: str
    name: str | None
    source: Any = None


def read_first_frame(value: Any, *, field_name: str = "first_frame") -> FirstFrame:
    """
    Turn any accepted ``first_frame`` into what the API takes, classifying and reading it once.

    URLs are sent as they are; everything else is read, checked to be a JPEG or PNG and
    sent as raw base64 (GMI does not document whether it accepts a ``data:`` prefix).
    The description, never the base64, is what may be logged.

    :param value: an http(s) URL, base64 text or ``data:`` URI, a local path (``str`` or
        ``os.PathLike``), ``bytes``, or any object with ``read_bytes()`` such as
        Airflow's ``ObjectStoragePath``. A URL cannot be checked offline: GMI fetches it,
        and refuses it in the queue if it breaks a limit.
    :param field_name: the payload field the image is for (``first_frame``, ``image``,
        ``image_tail``), named in error messages.
    """
    if isinstance(value, bytes | bytearray | memoryview):
        image = encode_image(bytes(value), source="the bytes given", field_name=field_name)
        return FirstFrame(image.b64, image.describe(), None)
    if isinstance(value, str):
        kind = classify_first_frame(value, field_name=field_name)
        name = _stem(value, kind)
        if kind == "url":
            return FirstFrame(value.strip(), f"URL {value.strip()}", name, value.strip())
        if kind in ("base64", "data_uri"):
            image = decode_base64_image(value, field_name=field_name)
            return FirstFrame(image.b64, image.describe(), name)
        value = Path(value.strip()).expanduser()
    if isinstance(value, os.PathLike) and not hasattr(value, "read_bytes"):
        value = Path(value)
    if hasattr(value, "read_bytes"):
        image = _read_image(value, field_name)
        return FirstFrame(image.b64, f"{image.describe()} from {value}", _stem(value, "path"), value)
    raise KlingValidationError(field_name, f"a {type(value).__name__} is not supported", _FIRST_FRAME_ALLOWED)


def prepare_first_frame(value: Any, *, field_name: str = "first_frame") -> tuple[str, str]:
    """What ``read_first_frame`` sends and logs: ``(URL or base64, description)``, from one read."""
    frame = read_first_frame(value, field_name=field_name)
    return frame.data, frame.description


def _read_image(path: Any, field_name: str) -> EncodedImage:
    source = f"file {str(path)[:200]}"
    try:
        if not path.exists():
            raise KlingValidationError(field_name, f"{source} does not exist", _FIRST_FRAME_ALLOWED)
        if path.is_dir():
            raise KlingValidationError(field_name, f"{source} is a directory", "a JPEG or PNG file")
        size = path.stat().st_size
        # Check the size before reading, so a huge file is refused without loading it.
        if size > MAX_IMAGE_BYTES:
            raise KlingValidationError(
                field_name, f"{source} is {size:,} bytes", f"at most {MAX_IMAGE_BYTES:,} bytes (10 MB)"
            )
        data = path.read_bytes()
    except OSError as err:
        raise KlingValidationError(
            field_name, f"{source} cannot be read ({err.strerror or err})", "a readable JPEG or PNG file"
        ) from None
    image = _check_image(data, source=source, field_name=field_name)
    b64 = base64.b64encode(data)
    # Free the file's bytes before the base64 is copied to text: for a 10 MB image the peak is then
    # two copies of the base64, not those and the file too (bench/memory.py).
    del data
    return replace(image, b64=b64.decode("ascii"))


def image_stem(value: Any) -> str | None:
    """
    The name a video made from this image can carry: the image's file name without its
    suffix (``shoes/red.jpg`` and ``https://cdn/x/red.jpg?v=2`` give ``red``), or ``None`` for
    an image with no name (bytes, base64, a data URI) or a value that is not an image.

    Only the value is looked at: nothing is read, so this is free at any time.
    """
    if isinstance(value, str):
        try:
            return _stem(value, classify_first_frame(value))
        except KlingValidationError:
            return None
    if isinstance(value, os.PathLike) or hasattr(value, "read_bytes"):
        return _stem(value, "path")
    return None


def _stem(value: Any, kind: FirstFrameKind) -> str | None:
    if kind in ("base64", "data_uri"):
        return None
    if isinstance(value, str):
        text = value.strip()
        name = urlsplit(text).path if kind == "url" else text
    else:
        name = str(getattr(value, "path", None) or value)
    stem = Path(name.replace("\\", "/").rstrip("/")).stem
    return stem or None
