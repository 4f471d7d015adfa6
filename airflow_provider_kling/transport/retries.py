"""
When to retry a call to GMI, and how long to wait: one policy for the sync and async clients.

Polls (GET) are safe to repeat. A submit (POST) is paid for, so it is repeated only when
GMI surely created no request (:func:`~airflow_provider_kling.transport.failures.surely_refused`)
and asking again may work (a refused connection, 408, 409, 425, 429).
"""

from __future__ import annotations

from typing import Any, Protocol

from tenacity import (
    RetryCallState,
    retry_if_exception,
    stop_after_attempt,
    stop_after_delay,
    wait_exponential_jitter,
)
from tenacity.stop import stop_base
from tenacity.wait import wait_base

from airflow_provider_kling.api.errors import KlingAPIError
from airflow_provider_kling.transport.failures import surely_refused


class _Log(Protocol):
    # Positional-only, so the stdlib logger and Airflow's structlog-style one both fit.
    def warning(self, msg: Any, /, *args: Any) -> Any: ...


def is_retryable(exc: BaseException, *, idempotent: bool) -> bool:
    """
    Whether a failed call may be repeated.

    :param idempotent: ``True`` for reads. For a submit, only errors that prove GMI did not
        accept the request are retried, so a retry never pays for the same video twice.
    """
    if not isinstance(exc, KlingAPIError):
        return False
    return exc.transient and (idempotent or surely_refused(exc))


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


def retrying_arguments(
    *, idempotent: bool, attempts: int, max_wait: float, max_delay: float, log: _Log
) -> dict[str, Any]:
    """
    Everything ``Retrying`` or ``AsyncRetrying`` needs for one call: what is retried, the
    waits and limits of :func:`retry_policy`, and a warning in ``log`` before each wait.
    """

    def log_retry(state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        wait = state.next_action.sleep if state.next_action else 0.0
        log.warning(
            "Kling API call failed (attempt %d): %s; retrying in %.1f s", state.attempt_number, exc, wait
        )

    return {
        "retry": retry_if_exception(lambda exc: is_retryable(exc, idempotent=idempotent)),
        "before_sleep": log_retry,
        **retry_policy(attempts=attempts, max_wait=max_wait, max_delay=max_delay),
    }


def _retry_after_of(retry_state: RetryCallState) -> float | None:
    outcome = retry_state.outcome
    if outcome is None or not outcome.failed:
        return None
    exc = outcome.exception()
    return exc.retry_after if isinstance(exc, KlingAPIError) else None
