"""
What went wrong with a call to GMI, as one of the provider's exceptions.

An HTTP error answer becomes a :class:`~airflow_provider_kling.exceptions.KlingAPIError`
whose message says what to do about it; a missing answer (refused, reset, timed out)
becomes a :class:`~airflow_provider_kling.exceptions.KlingTransportError` that says whether
the request may have reached GMI, which decides whether a paid submit may be sent again.
"""

from __future__ import annotations

import contextlib
import email.utils
import json
import re
import time
from collections.abc import Iterator, Mapping
from datetime import timezone
from typing import TYPE_CHECKING, Any, NoReturn

from airflow_provider_kling.api.redaction import redact
from airflow_provider_kling.api.validation import validate_request_id
from airflow_provider_kling.exceptions import (
    KlingAPIError,
    KlingSubmitOutcomeUnknown,
    KlingSubmitRejected,
    KlingTransportError,
    KlingValidationError,
)

if TYPE_CHECKING:
    from airflow_provider_kling.api import ConnectionSettings

_RETRY_IN_MS = re.compile(r"retry in (\d+(?:\.\d+)?)\s*ms", re.I)
#: Nesting an answer may have; GMI's records are four or five levels deep. Deeper JSON would
#: overflow the stack of whoever walks it next (repr, XCom, the triggerer's event store).
MAX_JSON_DEPTH = 64


def parse_retry_after(body: Any, headers: Mapping[str, str]) -> float | None:
    """
    Seconds the server asked us to wait, from GMI's ``rate_limit.retry_after_ms`` body
    field, the standard ``Retry-After`` header, or a "Retry in N ms" sentence.
    """
    if isinstance(body, Mapping):
        rate_limit = body.get("rate_limit")
        if isinstance(rate_limit, Mapping):
            value = rate_limit.get("retry_after_ms")
            if isinstance(value, int | float) and not isinstance(value, bool) and value >= 0:
                return float(value) / 1000
    header = next((v for k, v in headers.items() if k.lower() == "retry-after"), None)
    if header:
        header = header.strip()
        try:
            return max(0.0, float(header))
        except ValueError:
            try:
                parsed = email.utils.parsedate_to_datetime(header)
            except (TypeError, ValueError):
                parsed = None  # neither seconds nor an HTTP date: ignore the header
            if parsed is not None:
                if parsed.tzinfo is None:  # "-0000" means UTC, not local time
                    parsed = parsed.replace(tzinfo=timezone.utc)
                return max(0.0, parsed.timestamp() - time.time())
    text = body.get("error") if isinstance(body, Mapping) else body
    if isinstance(text, str) and (match := _RETRY_IN_MS.search(text)):
        return float(match.group(1)) / 1000
    return None


def parse_body(text: str) -> Any:
    """The body as JSON, or the text itself when it is not JSON or too deep (``None`` when empty)."""
    try:
        body = json.loads(text) if text else None
    except (ValueError, RecursionError):
        return text
    return body if _depth_within(body, MAX_JSON_DEPTH) else text


def _depth_within(value: Any, limit: int) -> bool:
    # Iterative, so a deep answer cannot overflow the stack of the check itself.
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list):
            if depth >= limit:
                return False
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, depth + 1) for child in children)
    return True


def error_for_status(
    status_code: int, text: str, headers: Mapping[str, str], *, what: str, secrets: tuple[str, ...] = ()
) -> KlingAPIError:
    """
    Turn an HTTP error answer into an exception whose message says what to do about it.

    :param what: the call that failed, e.g. "submit to kling-3.0-turbo-i2v".
    :param secrets: the forms of the API key to redact from the server's text.
    """
    text = redact(text, secrets)
    body = parse_body(text)
    detail = body.get("error") if isinstance(body, Mapping) else None
    if not isinstance(detail, str) or not detail:
        detail = _short(text) or "(empty body)"
    retry_after = parse_retry_after(body, headers)
    prefix = f"GMI answered HTTP {status_code} to {what}"
    if status_code in (401, 403):
        hint = "check the API key in the connection's Password field and the key's permissions"
    elif status_code == 402:
        hint = "the GMI account needs billing attention"
    elif status_code == 404:
        hint = "the model id is case-sensitive; check it and that your account may use it"
    elif status_code == 429:
        wait = f" in {retry_after:.1f} s" if retry_after is not None else ""
        hint = f"rate limited: GMI asks to retry{wait}"
    elif status_code == 500 and "backend error (400)" in detail.lower():
        hint = "GMI reports this for an invalid parameter value"
    elif status_code >= 500:
        hint = "a server-side problem at GMI"
    else:
        hint = "the request was refused"
    return KlingAPIError(
        f"{prefix}: {detail} ({hint})",
        status_code=status_code,
        retry_after=retry_after,
        request_id=_named_request(body),
    )


def _named_request(body: Any) -> str | None:
    # GMI's 503 names a request that may exist: kept (when well-formed) so a submit looks it up.
    value = body.get("request_id") if isinstance(body, Mapping) else None
    try:
        return validate_request_id(value) if isinstance(value, str) else None
    except KlingValidationError:
        return None


def parse_answer(
    status_code: int, text: str, headers: Mapping[str, str], *, what: str, secrets: tuple[str, ...] = ()
) -> dict[str, Any]:
    """
    The JSON object GMI answered with, with the API key (``secrets``) redacted from it
    before anything reads it: a record, an error message, a log line.

    :raises ~airflow_provider_kling.exceptions.KlingAPIError: an HTTP error answer; a redirect
        (never followed: it would resend the key and the payload elsewhere); JSON nested deeper
        than :data:`MAX_JSON_DEPTH` (no ``status_code``: unreadable, so transient); or a
        success whose body is not a JSON object (its ``status_code`` is set, so it is not
        mistaken for a lost answer).
    """
    text = redact(text, secrets)
    if 300 <= status_code < 400:
        raise redirect_error(status_code, headers, what=what, secrets=secrets)
    if status_code >= 400:
        raise error_for_status(status_code, text, headers, what=what)
    try:
        body = json.loads(text) if text else None
    except (ValueError, RecursionError) as err:
        body = text
        if isinstance(err, RecursionError):
            body = _TOO_DEEP
    if body is not _TOO_DEEP and not _depth_within(body, MAX_JSON_DEPTH):
        body = _TOO_DEEP
    if body is _TOO_DEEP:
        raise KlingAPIError(
            f"GMI answered {what} with JSON nested more than {MAX_JSON_DEPTH} levels deep, which no "
            "record needs; the answer was not read"
        )
    if not isinstance(body, dict):
        raise KlingAPIError(
            f"GMI answered HTTP {status_code} to {what} with a body that is not a JSON object: "
            f"{text[:200]!r}",
            status_code=status_code,
        )
    return body


_TOO_DEEP = object()


def redirect_error(
    status_code: int, headers: Mapping[str, str], *, what: str, secrets: tuple[str, ...] = ()
) -> KlingAPIError:
    """A 3xx to an API call: an error naming where it pointed (the key redacted), never a hop taken."""
    from urllib.parse import urlsplit

    location = headers.get("Location") or headers.get("location") or ""
    try:
        # The host is case-folded here, so a key echoed in it is lower-cased: redact() ignores case.
        target = redact(urlsplit(location).hostname or "the same host", secrets)
    except ValueError:
        target = "an unreadable Location"
    return KlingAPIError(
        f"GMI answered HTTP {status_code} to {what}, a redirect to {_short(target, 100)}; API calls do "
        "not follow redirects, which would resend the API key and the payload elsewhere. Check the "
        "connection's host",
        status_code=status_code,
    )


def list_field(body: Mapping[str, Any], key: str, *, what: str) -> list[Any]:
    """
    The list under ``key`` of an answer; any other shape raises ``KlingAPIError``.

    ``null`` reads as an empty list: GMI's own SDK accepts ``"requests": null`` for an account
    with none.
    """
    items = body.get(key) if isinstance(body, Mapping) else None
    if items is None and isinstance(body, Mapping) and key in body:
        return []
    if not isinstance(items, list):
        raise KlingAPIError(f"GMI answered {what} without a {key!r} list: {str(body)[:300]}")
    return items


def surely_refused(err: KlingAPIError) -> bool:
    """
    Whether a failed submit proves GMI created no request, so sending it again cannot pay twice.

    Refused: no connection was made; a 4xx (GMI checks before it queues); a redirect (never
    followed). Everything else may have created one: an answer lost in transit or too slow,
    any 5xx (GMI has answered 500 after accepting, its 503 names a request, and a proxy's
    HTML 502 or 503 says nothing of what happened behind it), a 2xx that cannot be read.
    """
    if isinstance(err, KlingTransportError):
        return not err.sent
    code = err.status_code
    return code is not None and 300 <= code < 500


def raise_for_submit(err: KlingAPIError, *, model: str, started_at: float) -> NoReturn:
    """
    Raise what a failed submit is: unknown (GMI may have created it), rejected for good, or
    refused for now (``err`` itself: the task's retries may send it again).
    """
    if not surely_refused(err):
        raise KlingSubmitOutcomeUnknown(
            f"{err}. The request may have been created; it was not sent again so it is not paid for twice.",
            model=model,
            started_at=started_at,
            status_code=err.status_code,
            request_id=err.request_id,
        ) from err
    if not err.transient:
        raise KlingSubmitRejected(str(err), status_code=err.status_code, request_id=err.request_id) from err
    raise err


@contextlib.contextmanager
def requests_errors(what: str, settings: ConnectionSettings) -> Iterator[None]:
    """Raise ``requests``' failures to get an answer as a ``KlingTransportError``, with ``sent`` set."""
    import requests
    import urllib3

    try:
        yield
    except requests.exceptions.ConnectTimeout as err:
        raise KlingTransportError(
            f"{what}: could not connect to {settings.base_url}: {err}", sent=False
        ) from None
    except requests.exceptions.ConnectionError as err:
        raise KlingTransportError(f"{what}: {_connection_problem(err)}", sent=_maybe_sent(err)) from None
    # An answer's body is read from urllib3 itself (transport.bounds), whose errors are its own.
    except (requests.exceptions.Timeout, urllib3.exceptions.ReadTimeoutError) as err:
        raise KlingTransportError(
            f"{what}: no answer within {settings.timeout:g} s ({err})", sent=True
        ) from None
    except (requests.exceptions.RequestException, urllib3.exceptions.HTTPError) as err:
        # A malformed answer (conflicting lengths, broken chunks or gzip): the request arrived.
        raise KlingTransportError(
            f"{what}: unreadable answer ({_connection_problem(err)})", sent=True
        ) from None


@contextlib.contextmanager
def httpx_errors(what: str, settings: ConnectionSettings) -> Iterator[None]:
    """Raise ``httpx``' failures to get an answer as a ``KlingTransportError``, with ``sent`` set."""
    import httpx

    try:
        yield
    except (httpx.ConnectError, httpx.ConnectTimeout) as err:
        raise KlingTransportError(
            f"{what}: could not connect to {settings.base_url}: {err!r}", sent=False
        ) from None
    except httpx.TimeoutException as err:
        raise KlingTransportError(
            f"{what}: no answer within {settings.timeout:g} s ({err!r})", sent=True
        ) from None
    except httpx.TransportError as err:
        raise KlingTransportError(f"{what}: connection failed: {err!r}", sent=True) from None
    except httpx.RequestError as err:
        # A malformed answer (broken gzip, bad encoding): the request arrived.
        raise KlingTransportError(f"{what}: unreadable answer: {_short(repr(err))}", sent=True) from None


def _maybe_sent(err: BaseException) -> bool:
    """False only when the error proves the connection never opened (refused, DNS)."""
    from urllib3.exceptions import NameResolutionError, NewConnectionError

    cause: BaseException | None = err
    while cause is not None:
        if isinstance(cause, NewConnectionError | NameResolutionError | ConnectionRefusedError):
            return False
        reason = getattr(cause, "reason", None)
        cause = reason if isinstance(reason, BaseException) else (cause.__cause__ or cause.__context__)
    return True


def _connection_problem(err: BaseException) -> str:
    return f"connection failed ({type(err).__name__}: {str(err)[:300]})"


def _short(text: str, limit: int = 300) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit] + "..."
