"""
When to retry a call to GMI, and how long to wait: one policy for the sync and async clients.

Polls (GET) are safe to repeat. A submit (POST) is paid for, so it is repeated only when
the request surely did not reach GMI, or GMI surely refused it (429, 503).
"""

from __future__ import annotations

import email.utils
import json
import re
import time
from collections.abc import Mapping
from datetime import timezone
from typing import Any

from tenacity import RetryCallState, stop_after_attempt, stop_after_delay, wait_exponential_jitter
from tenacity.stop import stop_base
from tenacity.wait import wait_base

from airflow_provider_kling.api.errors import KlingAPIError, KlingTransportError

# A 429 or 503 means GMI refused the submit, so it is not a duplicate to send it again.
SUBMIT_RETRY_STATUSES = frozenset({429, 503})
_RETRY_IN_MS = re.compile(r"retry in (\d+(?:\.\d+)?)\s*ms", re.I)


def is_retryable(exc: BaseException, *, idempotent: bool) -> bool:
    """
    Whether a failed call may be repeated.

    :param idempotent: ``True`` for reads. For a submit, only errors that prove GMI did not
        accept the request are retried, so a retry never pays for the same video twice.
    """
    if not isinstance(exc, KlingAPIError):
        return False
    if idempotent:
        return exc.transient
    if isinstance(exc, KlingTransportError):
        return not exc.sent
    return exc.status_code in SUBMIT_RETRY_STATUSES


class wait_server_hint(wait_base):
    """Exponential backoff with jitter, but never shorter than the server's own retry hint."""

    def __init__(self, initial: float, maximum: float) -> None:
        self.backoff = wait_exponential_jitter(initial=initial, max=maximum)

    def __call__(self, retry_state: RetryCallState) -> float:
        hint = _retry_after_of(retry_state)
        return max(self.backoff(retry_state), hint or 0.0)


class stop_if_hint_exceeds(stop_base):
    """Give up at once when the server asks for a longer wait than we are willing to sleep."""

    def __init__(self, maximum: float) -> None:
        self.maximum = maximum

    def __call__(self, retry_state: RetryCallState) -> bool:
        hint = _retry_after_of(retry_state)
        return hint is not None and hint > self.maximum


def retry_policy(*, attempts: int, max_wait: float, max_delay: float) -> dict[str, Any]:
    """Tenacity arguments shared by the sync and async clients (``retry`` is added by the caller)."""
    return {
        "wait": wait_server_hint(initial=1.0, maximum=max_wait),
        "stop": stop_after_attempt(attempts) | stop_after_delay(max_delay) | stop_if_hint_exceeds(max_wait),
        "reraise": True,
    }


def _retry_after_of(retry_state: RetryCallState) -> float | None:
    outcome = retry_state.outcome
    if outcome is None or not outcome.failed:
        return None
    exc = outcome.exception()
    return exc.retry_after if isinstance(exc, KlingAPIError) else None


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
    try:
        return json.loads(text) if text else None
    except ValueError:
        return text


def error_for_status(status_code: int, text: str, headers: Mapping[str, str], *, what: str) -> KlingAPIError:
    """
    Turn an HTTP error answer into an exception whose message says what to do about it.

    :param what: the call that failed, e.g. "submit to kling-3.0-turbo-i2v".
    """
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
    return KlingAPIError(f"{prefix}: {detail} ({hint})", status_code=status_code, retry_after=retry_after)


def _short(text: str, limit: int = 300) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit] + "..."
