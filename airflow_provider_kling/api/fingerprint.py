"""
What was submitted, as one short string: the key to "is this the same request?".

A retried or cleared task compares the fingerprint of what it is about to submit with the one
stored by the try that paid, so a changed prompt or image is never answered with the earlier
video; and a submit whose answer was lost finds its own request among GMI's by comparing the
fingerprint of each record's payload echo.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Any, Literal

#: How a payload echo compares with what was sent: the same inputs, provably other inputs, or
#: undecidable (no echo, or a difference GMI's normalisation could explain).
Sameness = Literal["same", "other", "unknown"]
_NUMBER = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?")

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


def compare_echo(model: str, payload: Mapping[str, Any], record: Mapping[str, Any]) -> Sameness:
    """
    Whether a record's payload echo shows the inputs of ``payload``, as GMI may normalise them.

    GMI may echo ``"5"`` as ``5``, reorder keys, fill in the defaults its model doc names
    (``ModelSpec.defaults`` in ``api/models.py``) and change the case or
    blanks around a value; none of that makes the inputs other. ``"other"`` needs a value of
    the same kind that differs, or another model; an empty or missing echo, a key GMI added
    or left out, and a differing inline image (GMI may echo a stored copy) are ``"unknown"``.
    """
    named = record.get("model")
    if isinstance(named, str) and named and named != model:
        return "other"
    echo = record.get("payload")
    if not isinstance(echo, Mapping) or not echo:
        return "unknown"
    from airflow_provider_kling.api.models import MODEL_SPECS

    spec = MODEL_SPECS.get(model)
    defaults = spec.defaults if spec is not None else {}
    results = []
    for key in {str(k) for k in payload} | {str(k) for k in echo}:
        sent, echoed = _value(payload, key), _value(echo, key)
        if sent is _MISSING and key in defaults:
            sent = defaults[key]
        if echoed is _MISSING and key in defaults:
            echoed = defaults[key]
        results.append(_compare(sent, echoed))
    return _combine(results)


_MISSING: Any = object()


def _value(mapping: Mapping[str, Any], key: str) -> Any:
    value = next((v for k, v in mapping.items() if str(k) == key), _MISSING)
    # A blank value is how some APIs echo a key nobody set.
    return _MISSING if value is None or value == "" else value


def _combine(results: list[Sameness]) -> Sameness:
    if "other" in results:
        return "other"
    return "unknown" if "unknown" in results else "same"


def _compare(sent: Any, echoed: Any) -> Sameness:
    if sent is _MISSING or echoed is _MISSING:
        return "same" if sent is echoed else "unknown"
    if isinstance(sent, Mapping) and isinstance(echoed, Mapping):
        keys = {str(k) for k in sent} | {str(k) for k in echoed}
        return _combine([_compare(_value(sent, k), _value(echoed, k)) for k in keys])
    if isinstance(sent, list | tuple) and isinstance(echoed, list | tuple):
        if len(sent) != len(echoed):
            return "other"
        return _combine([_compare(a, b) for a, b in zip(sent, echoed, strict=True)])
    a, b = _normal(sent), _normal(echoed)
    if a == b:
        return "same"
    if type(a) is not type(b) or (isinstance(a, str) and max(len(a), len(b)) >= _LONG):
        return "unknown"
    return "other"


def _normal(value: Any) -> Any:
    """A scalar as GMI might echo it: numbers and numeric text alike, text without case or blanks."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return _decimal(repr(value))
    if isinstance(value, str):
        text = value.strip()
        if _NUMBER.fullmatch(text):
            number = _decimal(text)
            if number is not None:
                return number
        return text if len(text) >= _LONG else text.casefold()
    return value


def _decimal(text: str) -> Decimal | str:
    try:
        number = Decimal(text)
    except InvalidOperation:
        return text
    return number if number.is_finite() else text


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


__all__ = ["Sameness", "compare_echo", "echo_fingerprint", "fingerprint"]
