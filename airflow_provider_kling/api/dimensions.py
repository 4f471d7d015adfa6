"""Image width and height read from the file header, and GMI's published limits on them."""

from __future__ import annotations

import struct

from airflow_provider_kling.api.errors import KlingValidationError

#: Each side of an image-to-video input must be at least this many pixels.
MIN_IMAGE_SIDE = 300
#: The longer side may be at most this many times the shorter one (1:2.5 to 2.5:1).
MAX_ASPECT_RATIO = 2.5

# JPEG start-of-frame markers carry the size; C4 (DHT), C8 (JPG) and CC (DAC) share the
# range but are not frames.
_SOF_MARKERS = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
# Markers that stand alone, without a length field.
_STANDALONE = frozenset({0x01, *range(0xD0, 0xD8)})


def image_size(data: bytes) -> tuple[int, int] | None:
    """
    ``(width, height)`` of a PNG or JPEG, from its header alone; ``None`` when unreadable.

    Only the header is parsed, so no image library is needed and nothing is decoded.

    :param data: the whole image file, or at least its first segments.
    """
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        # The IHDR chunk comes first: length (4) + "IHDR" (4), then width and height.
        if len(data) >= 24 and data[12:16] == b"IHDR":
            width, height = struct.unpack(">II", data[16:24])
            return int(width), int(height)
        return None
    if data.startswith(b"\xff\xd8"):
        return _jpeg_size(data)
    return None


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    pos = 2
    while pos + 4 <= len(data):
        if data[pos] != 0xFF:
            return None
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte before a marker
            pos += 1
            continue
        if marker in _STANDALONE:
            pos += 2
            continue
        if marker in (0xD9, 0xDA):  # end of image, or start of scan before any frame header
            return None
        (length,) = struct.unpack(">H", data[pos + 2 : pos + 4])
        if marker in _SOF_MARKERS:
            if pos + 9 > len(data):
                return None
            height, width = struct.unpack(">HH", data[pos + 5 : pos + 9])
            return int(width), int(height)
        pos += 2 + length
    return None


def check_image_size(data: bytes, *, source: str, field_name: str = "first_frame") -> tuple[int, int]:
    """
    Check an image against GMI's published image-to-video limits and return its size.

    :param data: the image file (JPEG or PNG).
    :param source: where it came from, for the error message.
    :param field_name: the argument the image was given as, for the error message.
    :raises KlingValidationError: the size is unreadable, a side is under 300 px, or the
        aspect ratio is outside 1:2.5 to 2.5:1.
    """
    size = image_size(data)
    allowed = (
        f"an image at least {MIN_IMAGE_SIDE} px on each side, with an aspect ratio between "
        f"1:{MAX_ASPECT_RATIO:g} and {MAX_ASPECT_RATIO:g}:1"
    )
    if size is None or 0 in size:
        raise KlingValidationError(field_name, f"{source} has no readable width and height", allowed)
    width, height = size
    if min(width, height) < MIN_IMAGE_SIDE:
        raise KlingValidationError(field_name, f"{source} is {width}x{height} px", allowed)
    if max(width, height) / min(width, height) > MAX_ASPECT_RATIO:
        raise KlingValidationError(
            field_name, f"{source} is {width}x{height} px (aspect ratio {width / height:.2f})", allowed
        )
    return width, height
