"""The JSON body of a submit, streamed from the payload itself.

A 10 MB image is 13 MB of base64 in the payload. ``json.dumps(...).encode()`` would hold two more
copies of it (the JSON text and its bytes) while the request is sent; :class:`JsonBody` reads the
payload's own strings in small slices instead, so sending adds a few kilobytes, whatever the image.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from typing import Any

#: Characters of a long string sent at a time.
SLICE = 64 * 1024
# Base64 and other strings made only of these need no JSON escaping, so they can be sent as they are.
_VERBATIM = re.compile(r"[A-Za-z0-9+/=._:-]*")


def json_pieces(value: Any) -> Iterator[str]:
    """
    ``value`` as compact JSON text, in pieces that together equal ``json.dumps(value)`` parsed back.

    Every piece is ASCII (``ensure_ascii``), so its length in characters is its length in bytes.

    :param value: dicts (with string keys), lists, tuples and JSON scalars.
    """
    if isinstance(value, str) and len(value) > SLICE and _VERBATIM.fullmatch(value):
        yield '"'
        for start in range(0, len(value), SLICE):
            yield value[start : start + SLICE]
        yield '"'
    elif isinstance(value, Mapping):
        yield "{"
        for i, (key, item) in enumerate(value.items()):
            if not isinstance(key, str):
                raise TypeError(f"JSON object keys must be strings, not {type(key).__name__}")
            yield ("," if i else "") + json.dumps(key) + ":"
            yield from json_pieces(item)
        yield "}"
    elif isinstance(value, list | tuple):
        yield "["
        for i, item in enumerate(value):
            if i:
                yield ","
            yield from json_pieces(item)
        yield "]"
    else:
        yield json.dumps(value, allow_nan=False, separators=(",", ":"))


class JsonBody:
    """
    A read-only, rewindable file of ``value``'s JSON, with its length known up front.

    HTTP clients send it with a ``Content-Length`` (no chunked encoding) in reads of their own
    block size. Make one per attempt, or :meth:`seek` to 0 before sending it again.
    """

    def __init__(self, value: Any) -> None:
        self._value = value
        self._length = sum(len(piece) for piece in json_pieces(value))
        self.seek(0)

    def __len__(self) -> int:
        return self._length

    def __iter__(self) -> Iterator[bytes]:
        while chunk := self.read(SLICE):
            yield chunk

    def tell(self) -> int:
        return self._position

    def seek(self, offset: int, whence: int = 0) -> int:
        """Rewind to ``offset`` bytes from the start (the only ``whence`` supported is 0)."""
        if whence != 0 or not 0 <= offset <= self._length:
            raise ValueError("JsonBody seeks only to a position from its start")
        self._pieces = json_pieces(self._value)
        self._pending = b""
        self._position = 0
        while self._position < offset and self.read(offset - self._position):
            pass  # read() advances the position
        return self._position

    def read(self, size: int = -1) -> bytes:
        """Up to ``size`` bytes (all that is left when ``size`` is negative); ``b""`` at the end."""
        limit = self._length - self._position if size is None or size < 0 else size
        parts = [self._pending]
        have = len(self._pending)
        while have < limit:
            piece = next(self._pieces, None)
            if piece is None:
                break
            data = piece.encode("ascii")
            parts.append(data)
            have += len(data)
        joined = b"".join(parts)
        chunk, self._pending = joined[:limit], joined[limit:]
        self._position += len(chunk)
        return chunk


__all__ = ["JsonBody", "json_pieces"]
