"""Every form of the API key that text may carry, and taking them out of answers, errors and logs.

A server (or a proxy in front of it) that echoes the key rarely echoes it as sent: a redirect's host
is case-folded, a Basic-auth header or a debugging page shows it base64-encoded (alone, as
``:key``, ``user:key`` or ``Bearer key``), a URL shows it %-encoded, JSON escapes it. Each of those
forms is redacted, without regard to case.
"""

from __future__ import annotations

import base64
import contextlib
import html
import json
import re
from collections.abc import Callable, Iterable, Iterator
from functools import lru_cache
from typing import Any
from urllib.parse import quote, quote_plus

#: Forms shorter than this are not redacted: replacing a few common letters would mangle every
#: answer, and no GMI key is that short.
MIN_REDACTED_CHARS = 8

_ENCODERS: tuple[Callable[[bytes], bytes], ...] = (base64.b64encode, base64.urlsafe_b64encode)


def key_forms(keys: Iterable[str | None]) -> tuple[str, ...]:
    """Every form of each key a text may hold, longest first (so none is left half-replaced)."""
    return _key_forms(tuple(keys))


# Every poll redacts its answer: computed once per key, not ~50 us of encodings per poll.
@lru_cache(maxsize=64)
def _key_forms(keys: tuple[str | None, ...]) -> tuple[str, ...]:
    forms: set[str] = set()
    for key in (k for k in keys if k and len(k.strip()) >= MIN_REDACTED_CHARS):
        forms |= {key, json.dumps(key)[1:-1], quote(key, safe=""), quote_plus(key), html.escape(key)}
        raw = key.encode()
        for encode in _ENCODERS:
            forms |= {encode(raw).decode(), encode(b":" + raw).decode()}
            forms |= {_embedded_base64(encode, raw, offset) for offset in range(3)}
    return tuple(sorted((f for f in forms if len(f) >= MIN_REDACTED_CHARS), key=len, reverse=True))


def _embedded_base64(encode: Callable[[bytes], bytes], raw: bytes, offset: int) -> str:
    """
    The characters that the base64 of any text holding ``raw`` after ``offset`` (mod 3) bytes
    shares, whatever comes before and after it: ``user:key`` and ``Bearer key`` included.
    """
    text = encode(b"\0" * offset + raw).decode()
    # Base64 maps 3 bytes to 4 characters of 6 bits: keep every character made of the key's bits
    # only, including those of the groups it shares with what comes before and after it.
    start = (0, 2, 3)[offset]
    end = (offset + len(raw)) // 3 * 4 + (0, 1, 2)[(offset + len(raw)) % 3]
    return text[start:end]


def log_masks(forms: tuple[str, ...], *, masked: str | None = None) -> list[Any]:
    """
    What to hand Airflow's log masker, which matches text exactly: each form as is, lower- and
    upper-cased, but ``masked``, the password as stored, which Airflow masks by itself.
    """
    # list[Any]: Airflow's mask_secret takes pydantic's JsonValue, which list[str] is not to mypy.
    variants = {variant for form in forms for variant in (form, form.lower(), form.upper())}
    return sorted(v for v in variants - {masked} if len(v) >= MIN_REDACTED_CHARS)


@lru_cache(maxsize=64)
def _pattern(forms: tuple[str, ...]) -> re.Pattern[str] | None:
    kept = [re.escape(f) for f in forms if len(f) >= MIN_REDACTED_CHARS]
    return re.compile("|".join(kept), re.IGNORECASE) if kept else None


def redact(text: str, forms: tuple[str, ...]) -> str:
    """``text`` with every one of ``forms`` (see :func:`key_forms`), in any case, replaced by ``***``."""
    pattern = _pattern(tuple(forms))
    return text if pattern is None else pattern.sub("***", text)


def scrub(err: BaseException, forms: tuple[str, ...]) -> None:
    """
    Redact ``forms`` from an exception's message, and from every exception chained to it or
    carried in its arguments (``requests`` nests ``urllib3``'s, which quote the answer's bytes).

    A context Python was told to hide (``raise ... from None``) is dropped instead: it is never
    shown, and it may hold the raw answer.
    """
    stack: list[BaseException] = [err]
    seen: set[int] = set()
    while stack:
        item = stack.pop()
        if id(item) in seen:
            continue
        seen.add(id(item))
        item.args = tuple(redact(a, forms) if isinstance(a, str) else a for a in item.args)
        if notes := getattr(item, "__notes__", None):
            item.__dict__["__notes__"] = [redact(n, forms) if isinstance(n, str) else n for n in notes]
        stack.extend(a for a in item.args if isinstance(a, BaseException))
        if item.__suppress_context__:
            item.__context__ = None
        stack.extend(e for e in (item.__cause__, item.__context__) if e is not None)


@contextlib.contextmanager
def redacted_errors(forms: tuple[str, ...]) -> Iterator[None]:
    """Scrub (see :func:`scrub`) every exception leaving the block, before anyone logs or shows it."""
    try:
        yield
    except Exception as err:
        scrub(err, forms)
        raise


__all__ = ["MIN_REDACTED_CHARS", "key_forms", "log_masks", "redact", "redacted_errors", "scrub"]
