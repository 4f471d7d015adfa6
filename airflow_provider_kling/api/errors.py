"""Errors about the Kling API: bad input (refused before sending) and bad answers."""

from __future__ import annotations


class KlingError(Exception):
    """Base class of every error this provider raises about the Kling API."""


class KlingValidationError(KlingError, ValueError):
    """
    A value the user supplied cannot be sent to the API.

    Raised before any HTTP call, so nothing is paid for. ``field`` names the offending
    argument so a message in the Airflow UI points straight at the DAG code to fix.
    """

    def __init__(self, field: str, problem: str, allowed: str) -> None:
        self.field = field
        self.problem = problem
        self.allowed = allowed
        super().__init__(f"Invalid {field}: {problem}. Allowed: {allowed}.")


class KlingAPIError(KlingError):
    """
    The API answered with an HTTP error, or with a body that cannot be understood.

    :param message: what went wrong, in words a user can act on.
    :param status_code: the HTTP status, or ``None`` when no answer was received.
    :param retry_after: seconds the server asked us to wait (rate limits), if any.
    """

    def __init__(
        self, message: str, *, status_code: int | None = None, retry_after: float | None = None
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.retry_after = retry_after
