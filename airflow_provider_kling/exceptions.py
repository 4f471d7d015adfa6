"""Every exception the provider raises, in one module.

The Airflow-free ones (bad input, bad answers) are defined in ``airflow_provider_kling.api.errors``
so the API layer stays importable without Airflow; they are re-exported here.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from airflow.sdk.types import Logger

from airflow.sdk.exceptions import AirflowException

from airflow_provider_kling.api.errors import (
    KlingAPIError,
    KlingError,
    KlingTransportError,
    KlingValidationError,
)

try:
    from airflow.sdk.exceptions import AirflowFailException
except ImportError:  # Airflow < 3.2 keeps it in core
    from airflow.exceptions import AirflowFailException  # type: ignore[attr-defined,no-redef,unused-ignore]

try:
    from airflow.sdk.exceptions import AirflowNotFoundException
except ImportError:  # Airflow < 3.2 keeps it in core
    from airflow.exceptions import AirflowNotFoundException  # type: ignore[attr-defined,no-redef,unused-ignore]

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


# AirflowException's class-level ``status_code`` is for the API server's answers; here it is GMI's.
class KlingSubmitOutcomeUnknown(KlingAPIError, AirflowFailException):  # type: ignore[misc]
    """
    A submit may have created a paid request, and GMI's records could not tell which.

    :meth:`KlingHook.submit <airflow_provider_kling.hooks.kling.KlingHook.submit>` raises it when
    the answer was lost (a timeout, a reset, any 5xx, a proxy's HTML page, a 2xx that cannot
    be read). The submitting operators first reconcile it with GMI's records (adopting the
    one request GMI shows is this submit's: created since the first send, with these inputs)
    and raise it only when that cannot decide; then it fails the task without Airflow
    retries, since a retry would submit (and may pay) again. The message names the
    candidate requests, each with why it may be this submit's.

    :param model: the model the submit was for.
    :param started_at: when the submit was sent (Unix time): GMI's requests created since then
        are the candidates.
    :param status_code: the HTTP status of the lost answer (a 5xx, or 2xx unreadable), if any.
    :param request_id: a request the answer named, if it named one.
    :param candidates: the ids GMI listed as possibly this submit's, once reconciled.
    """

    def __init__(
        self,
        message: str,
        *,
        model: str,
        started_at: float,
        status_code: int | None = None,
        request_id: str | None = None,
        candidates: tuple[str, ...] = (),
    ) -> None:
        super().__init__(message, status_code=status_code, request_id=request_id)
        self.model = model
        self.started_at = started_at
        self.candidates = candidates

    @property
    def transient(self) -> bool:
        # Asking again is exactly what must not happen: it could pay twice.
        return False


class KlingSubmitRejected(KlingAPIError, AirflowFailException):  # type: ignore[misc]
    """
    GMI refused a submit for good (a 4xx other than 408, 409, 425 and 429, or a redirect):
    nothing was created, and the same submit would be refused again.

    Fails the task without Airflow retries, as the cost guard does, so a wrong key or model
    id fails in seconds instead of after every retry delay. The message says what to fix.
    """


class KlingCostLimitExceeded(AirflowFailException):
    """
    The request's estimated price is over the task's ``max_cost_usd``; nothing was submitted.

    Fails the task without Airflow retries: the same inputs would cost the same.
    """


class KlingConnectionNotFound(AirflowNotFoundException, AirflowFailException):
    """
    ``kling_conn_id`` names a connection that does not exist; nothing was sent.

    Fails the task without Airflow retries: the connection will not appear by waiting. The
    message names the parameter and the command that adds the connection.

    :param conn_id: the connection id that was looked up.
    """

    def __init__(self, conn_id: str) -> None:
        variable = "AIRFLOW_CONN_" + conn_id.upper()
        super().__init__(
            f"Invalid kling_conn_id: no connection {conn_id!r} is defined. Add it with "
            f'`airflow connections add {conn_id} --conn-type kling --conn-password "$GMI_API_KEY"`, '
            f"in the UI under Admin > Connections (type Kling (GMI Cloud)), or as the environment "
            f"variable {variable}; or pass kling_conn_id= the id of an existing one."
        )
        self.conn_id = conn_id

    @classmethod
    @contextmanager
    def on_lookup(cls, conn_id: str, log: Logger | None = None) -> Iterator[None]:
        """
        Turn Airflow's generic "isn't defined" from the lookup inside into this error, alone:
        chained, Airflow's message would be the first one the task log shows, a whole
        traceback above the one that names the fix.

        :param log: also log the message here first, so it is the task log's first error line,
            not only the last line of the traceback under Airflow's "Task failed with exception".
        """
        try:
            yield
        except AirflowNotFoundException:
            error = cls(conn_id)
            if log is not None:
                log.error("%s", error)
            raise error from None


class KlingDownloadError(AirflowException):
    """A video download was refused: larger than its cap, or not a video by its Content-Type."""


class KlingWaitError(KlingAPIError, AirflowException):  # type: ignore[misc]
    """
    A wait for a request could not go on: bad credentials, an unknown request, too many failed
    polls in a row, a success that names no video, or a trigger event that cannot be read.

    The same class in every way of waiting (trigger, operator wait, sensor poke).
    """


#: The name this exception had while only the trigger raised it; the same class.
KlingTriggerEventError = KlingWaitError


__all__ = [
    "AirflowFailException",
    "AirflowSensorTimeout",
    "AirflowSkipException",
    "KlingAPIError",
    "KlingConnectionNotFound",
    "KlingCostLimitExceeded",
    "KlingDownloadError",
    "KlingError",
    "KlingRequestFailedError",
    "KlingSubmitOutcomeUnknown",
    "KlingSubmitRejected",
    "KlingTransportError",
    "KlingTriggerEventError",
    "KlingValidationError",
    "KlingWaitError",
]
