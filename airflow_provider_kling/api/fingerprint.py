"""
What was submitted, as one short string: the key to "is this the same request?".

A retried or cleared task compares the fingerprint of what it is about to submit with the one
stored by the try that paid, so a changed prompt or image is never answered with the earlier
video; and a submit whose answer was lost finds its own request among GMI's by comparing the
fingerprint of each record's payload echo.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

#: A string this long or longer is hashed on its own first (an inline image), so the
#: fingerprint never needs a second copy of a 14 MB base64 string in memory.
_LONG = 4096
_SLICE = 1 << 20


def fingerprint(model: str, payload: Mapping[str, Any]) -> str:
    """
    ``sha256:<hex>`` of the model and the payload as sent.

    Key order does not matter; every value's type does (``5`` and ``"5"`` differ, as they do
    on the wire). An image is represented by the hash of its bytes as sent, so the same image
    given once as a path and once as base64 has the same fingerprint.
    """
    digest = hashlib.sha256()
    _feed(digest, {"model": model, "payload": payload})
    return f"sha256:{digest.hexdigest()}"


def echo_fingerprint(model: str, record: Mapping[str, Any]) -> str | None:
    """
    The fingerprint of a request record's payload echo, or ``None`` when GMI echoed nothing.

    GMI's records usually repeat the submitted payload verbatim; some echo ``{}`` or no
    ``payload`` at all, and then a record cannot be told apart from another by its inputs.
    """
    echo = record.get("payload")
    if not isinstance(echo, Mapping) or not echo:
        return None
    named = record.get("model")
    return fingerprint(named if isinstance(named, str) and named else model, echo)


def _feed(digest: Any, value: Any) -> None:
    # Type tags and lengths keep the encoding unambiguous without building a JSON string.
    if isinstance(value, Mapping):
        digest.update(b"{%d" % len(value))
        for key in sorted(value, key=str):
            _feed(digest, str(key))
            _feed(digest, value[key])
        digest.update(b"}")
    elif isinstance(value, list | tuple):
        digest.update(b"[%d" % len(value))
        for item in value:
            _feed(digest, item)
        digest.update(b"]")
    elif isinstance(value, str):
        if len(value) >= _LONG:
            inner = hashlib.sha256()
            for start in range(0, len(value), _SLICE):
                inner.update(value[start : start + _SLICE].encode())
            digest.update(b"h" + inner.digest())
        else:
            encoded = value.encode()
            digest.update(b"s%d:" % len(encoded) + encoded)
    elif value is None or isinstance(value, bool | int | float):
        digest.update(b"v" + repr(value).encode() + b";")
    else:
        digest.update(b"o" + repr(value).encode() + b";")


__all__ = ["echo_fingerprint", "fingerprint"]
