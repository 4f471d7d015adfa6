"""Checks of the request parameters, and what a request will cost."""

from __future__ import annotations

import difflib
import math
import numbers
import re
from collections.abc import Mapping, Sequence
from datetime import timedelta
from decimal import Decimal
from typing import Any

from airflow_provider_kling.api.errors import KlingValidationError

I2V_MODEL = "kling-3.0-turbo-i2v"

RESOLUTIONS = ("720p", "1080p")
MIN_DURATION, MAX_DURATION = 3, 15
MAX_PROMPT_CHARS = 2500

# USD per second of output video, by model and resolution (GMI's published prices).
PRICES_PER_SECOND: dict[str, dict[str, float]] = {
    "kling-3.0-turbo-i2v": {"720p": 0.112, "1080p": 0.14},
    "kling-3.0-turbo-t2v": {"720p": 0.112, "1080p": 0.14},
}


def closest(value: Any, choices: Sequence[str]) -> str | None:
    """The allowed value a near miss (``"1080"``, ``"16:10"``, ``"of"``) most likely meant, quoted."""
    text = str(value).strip().lower()
    if not text:
        return None
    prefixed = [c for c in choices if c.lower().startswith(text) or text.startswith(c.lower())]
    matches = prefixed or difflib.get_close_matches(text, [c.lower() for c in choices], n=1, cutoff=0.8)
    return repr(next(c for c in choices if c.lower() == matches[0].lower())) if matches else None


# A plain decimal number: "nan", "inf", "Infinity", "0x10" and "1_000" are not, though float() reads them.
_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")


def validate_number(
    value: Any,
    field: str,
    *,
    allowed: str,
    minimum: float | None = None,
    above: float | None = None,
    maximum: float | None = None,
) -> float:
    """
    Check a number a user gives (a cap, a timeout, an interval), as a literal or a rendered template.

    Every comparison with NaN is false, so a NaN cap would let anything through, and an
    infinite one means no cap: both are refused, whatever form they come in (``float("nan")``,
    ``"nan"``, ``"inf"``, ``"1e309"``, ``Decimal("NaN")``), and so are booleans.

    :param allowed: what the field takes, for the message.
    :param minimum: the least allowed value; ``above``: a bound the value must exceed;
        ``maximum``: the largest allowed value.
    :raises KlingValidationError: not a finite number, or out of bounds.
    """
    number = _finite(value, field, allowed)
    if (
        (minimum is not None and number < minimum)
        or (above is not None and number <= above)
        or (maximum is not None and number > maximum)
    ):
        raise KlingValidationError(field, f"{number:g} is out of range", allowed)
    return number


def validate_whole(value: Any, field: str, *, allowed: str, minimum: int = 0) -> int:
    """A whole number (a count, a size in bytes) checked as :func:`validate_number` checks any number."""
    number = validate_number(value, field, allowed=allowed, minimum=minimum)
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        return int(value)  # exact, even beyond a float's 53 bits
    if not number.is_integer():
        raise KlingValidationError(field, f"{number:g} is not a whole number", allowed)
    return int(number)


def validate_usd(value: Any, field: str) -> float:
    """A cap in USD: a finite number, 0 or more."""
    return validate_number(value, field, allowed="a finite number of USD, 0 or more", minimum=0)


def validate_seconds(value: Any, field: str, *, maximum: float | None = None) -> float:
    """A duration in seconds above 0 (a number, a numeric string or a ``timedelta``), finite."""
    limit = f" and up to {maximum:g}" if maximum is not None else ""
    allowed = f"a finite number of seconds above 0{limit}, or a timedelta"
    if isinstance(value, timedelta):
        value = value.total_seconds()
    return validate_number(value, field, allowed=allowed, above=0, maximum=maximum)


def validate_byte_cap(value: Any, field: str) -> int | None:
    """A size cap in bytes: a whole number, 1 or more, or ``None`` for no cap."""
    allowed = "a whole number of bytes, 1 or more, or None for no cap"
    return None if value is None else validate_whole(value, field, allowed=allowed, minimum=1)


def validate_poll_failures(value: Any) -> int:
    """``max_poll_failures``: consecutive failed checks a wait tolerates, 0 or more."""
    return validate_whole(value, "max_poll_failures", allowed="a whole number of failed checks, 0 or more")


def _finite(value: Any, field: str, allowed: str) -> float:
    shown = repr(value)
    shown = shown if len(shown) <= 40 else shown[:37] + "..."
    number: Any = value
    if isinstance(value, str):
        if not _NUMBER.fullmatch(value.strip()):
            spelled = value.strip().lower().lstrip("+-") in ("nan", "inf", "infinity")
            raise KlingValidationError(
                field, f"{shown} is not a {'finite ' if spelled else ''}number", allowed
            )
        number = Decimal(value.strip())
    if isinstance(number, bool) or not isinstance(number, numbers.Real | Decimal):
        raise KlingValidationError(field, f"{shown} ({type(value).__name__}) is not a number", allowed)
    # Decimal's signalling NaN refuses float() and every comparison.
    if isinstance(number, Decimal) and number.is_nan():
        raise KlingValidationError(field, f"{shown} is not a number (NaN)", allowed)
    try:
        result, overflowed = float(number), False
    except OverflowError:
        result, overflowed = math.inf, True
    if math.isnan(result):
        raise KlingValidationError(field, f"{shown} is not a number (NaN)", allowed)
    if math.isinf(result):
        # "1e309" is a finite number too large for a float, which reads it as infinity.
        finite_text = isinstance(value, str) or (isinstance(number, Decimal) and number.is_finite())
        problem = "too large" if overflowed or finite_text else "infinite"
        raise KlingValidationError(field, f"{shown} is {problem}", allowed)
    return result


def validate_prompt(prompt: Any) -> str | None:
    """Check the optional motion prompt (text up to 2,500 characters); blank means none."""
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
    """Check the resolution, ``720p`` or ``1080p`` (any case), and return it lower-cased."""
    allowed = " or ".join(repr(r) for r in RESOLUTIONS)
    if not isinstance(resolution, str):
        raise KlingValidationError("resolution", f"expected text, got {type(resolution).__name__}", allowed)
    normalized = resolution.strip().lower()
    if normalized not in RESOLUTIONS:
        suggestion = closest(normalized, RESOLUTIONS)
        raise KlingValidationError(
            "resolution", f"{resolution!r} is not supported", allowed, suggestion=suggestion
        )
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
            unit = re.fullmatch(r"(\d+)\s*(s|secs?|seconds?)", text, re.IGNORECASE)
            suggestion = unit.group(1) if unit else None
            raise KlingValidationError(
                "duration", f"{duration!r} is not a whole number", allowed, suggestion=suggestion
            )
        duration = int(text)
    if not isinstance(duration, int):
        raise KlingValidationError(
            "duration", f"{duration!r} ({type(duration).__name__}) is not valid", allowed
        )
    if not MIN_DURATION <= duration <= MAX_DURATION:
        raise KlingValidationError("duration", f"{duration} is out of range", allowed)
    return str(duration)


def validate_model(model: Any) -> str:
    """Check that a model id is one word of text; GMI itself says whether it exists."""
    if not isinstance(model, str) or not model.strip() or any(c.isspace() for c in model.strip()):
        raise KlingValidationError(
            "model", f"{model!r} is not a model id", "a GMI model id such as 'kling-3.0-turbo-i2v'"
        )
    # Model ids are case-sensitive at GMI, so only surrounding blanks are forgiven.
    return model.strip()


def estimate_cost(model: str, payload: Mapping[str, Any]) -> float | None:
    """
    Estimated price in USD of one request, or ``None`` for a model without a known price.

    Kling bills per second of output, at a rate set by the resolution; a payload without
    them is priced at GMI's defaults (720p, 5 seconds). The duration is read as
    :func:`validate_duration` reads it (``5``, ``5.0`` and ``"5"`` are one price); one that
    could not be sent has no price.

    :param model: the GMI model id; ``PRICES_PER_SECOND`` lists those with a price.
    :param payload: the request payload (``resolution`` and ``duration`` are read).
    """
    rates = PRICES_PER_SECOND.get(model)
    if rates is None:
        return None
    resolution = str(payload.get("resolution", "720p")).strip().lower()
    try:
        seconds = int(validate_duration(payload.get("duration", 5)))
    except KlingValidationError:
        return None
    return round(seconds * rates.get(resolution, rates["720p"]), 4)


#: GMI's ids are UUIDs; other gateways use short opaque tokens. Anything longer, or with other
#: characters, is not an id GMI gave out, and would flood XCom, the state store and the logs.
MAX_REQUEST_ID_CHARS = 128
_REQUEST_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]*")


def validate_request_id(value: Any, *, field: str = "request_id") -> str:
    """
    Accept a request id, or the dict a Kling task returned, and give the id.

    :param field: the argument or answer key the value came from, for the message.
    :raises KlingValidationError: not an id: empty, too long, or with characters GMI never uses.
    """
    allowed = (
        f"1 to {MAX_REQUEST_ID_CHARS} letters, digits, '.', '_', ':' or '-' (the id a Kling task pushes "
        "to XCom, for example submit.output), or the dict a Kling task returned"
    )
    if isinstance(value, Mapping):
        value = value.get("request_id")
    if not isinstance(value, str):
        raise KlingValidationError(field, f"expected an id string, got {type(value).__name__}", allowed)
    text = value.strip()
    if len(text) > MAX_REQUEST_ID_CHARS:
        raise KlingValidationError(field, f"{len(text):,} characters is too long", allowed)
    if not _REQUEST_ID.fullmatch(text):
        raise KlingValidationError(field, f"{text[:40]!r} is not a request id", allowed)
    return text
