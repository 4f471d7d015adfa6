"""Errors about the Kling API that need no Airflow: bad input (refused before sending) and bad answers.

:mod:`airflow_provider_kling.exceptions` re-exports them with the Airflow-facing ones, so users
import every exception from one module.
"""

from __future__ import annotations

# 4xx answers that may change if asked again; every other 4xx is permanent.
TRANSIENT_4XX = frozenset({408, 409, 425, 429})


class KlingError(Exception):
    """Base class of every error this provider raises about the Kling API."""

    @property
    def transient(self) -> bool:
        """Whether the same call may succeed if made again (a read is repeated, a wait goes on)."""
        return False


class KlingValidationError(KlingError, ValueError):
    """
    A value the user supplied cannot be sent to the API.

    Raised before any HTTP call, so nothing is paid for. ``field`` names the offending
    argument so a message in the Airflow UI points straight at the DAG code to fix.
    """

    def __init__(self, field: str, problem: str, allowed: str, *, suggestion: str | None = None) -> None:
        self.field = field
        self.problem = problem
        self.allowed = allowed
        self.suggestion = suggestion
        hint = f" Did you mean {suggestion}?" if suggestion else ""
        super().__init__(f"Invalid {field}: {problem}. Allowed: {allowed}.{hint}")


class KlingAPIError(KlingError):
    """
    The API answered with an HTTP error, or with a body that cannot be understood.

    :param message: what went wrong, in words a user can act on.
    :param status_code: the HTTP status, or ``None`` when no answer was received.
    :param retry_after: seconds the server asked us to wait (rate limits), if any.
    :param request_id: a request the error answer names (GMI's 503 "capacity exhausted" does),
        already checked to be a well-formed id: a submit answered so may have created it.
    """

    def __init__(
        self,
        message: str,
        *,
        status_code: int | None = None,
        retry_after: float | None = None,
        request_id: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.retry_after = retry_after
        self.request_id = request_id

    @property
    def transient(self) -> bool:
        """5xx, 408/409/425/429, or an answer that could not be read: asking again may work."""
        code = self.status_code
        return code is None or code >= 500 or code in TRANSIENT_4XX


class KlingTransportError(KlingAPIError):
    """
    No HTTP answer arrived (connection refused or reset, timeout).

    :param sent: whether the request may have reached the server. ``False`` only when
        the connection was never established, so a submit is known not to have happened.
    """

    def __init__(self, message: str, *, sent: bool) -> None:
        super().__init__(message)
        self.sent = sent

    @property
    def transient(self) -> bool:
        return True
