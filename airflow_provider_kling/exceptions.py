"""Exceptions raised to Airflow when a Kling request does not end in a video."""

from __future__ import annotations

from airflow.sdk.exceptions import AirflowException

try:
    from airflow.sdk.exceptions import AirflowFailException
except ImportError:  # Airflow < 3.2 keeps it in core
    from airflow.exceptions import AirflowFailException  # type: ignore[attr-defined,no-redef,unused-ignore]

try:
    from airflow.sdk.exceptions import AirflowSensorTimeout, AirflowSkipException
except ImportError:  # Airflow < 3.2 keeps them in core
    from airflow.exceptions import (  # type: ignore[attr-defined,no-redef,unused-ignore]
        AirflowSensorTimeout,
        AirflowSkipException,
    )


class KlingRequestFailedError(AirflowException):
    """
    GMI reports the request ``failed`` or ``cancelled``; the message carries GMI's error text.

    :param request_id: the request that failed.
    :param status: ``failed`` or ``cancelled``.
    :param error: GMI's error text, if it gave one.
    """

    def __init__(self, message: str, *, request_id: str, status: str, error: str | None = None) -> None:
        super().__init__(message)
        self.request_id = request_id
        self.status = status
        self.error = error


class KlingSubmitOutcomeUnknown(AirflowFailException):
    """
    A submit reached GMI but its answer was lost, so the request may exist and be billed.

    Fails the task without Airflow retries, since a retry would submit (and pay) again.
    """


class KlingCostLimitExceeded(AirflowFailException):
    """
    The request's estimated price is over the task's ``max_cost_usd``; nothing was submitted.

    Fails the task without Airflow retries: the same inputs would cost the same.
    """


class KlingDownloadError(AirflowException):
    """A video download was refused: larger than its cap, or not a video by its Content-Type."""


class KlingTriggerEventError(AirflowException):
    """The trigger reported an error (bad credentials, too many failed polls) or an unreadable event."""


__all__ = [
    "AirflowSensorTimeout",
    "AirflowSkipException",
    "KlingCostLimitExceeded",
    "KlingDownloadError",
    "KlingRequestFailedError",
    "KlingSubmitOutcomeUnknown",
    "KlingTriggerEventError",
]
