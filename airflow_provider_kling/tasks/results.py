"""From a finished wait to what the task does: return a result, or raise the exception that fits.

The event itself, and the wording of every outcome, is :mod:`airflow_provider_kling.api.events`;
this module only maps each event status to Airflow's way of ending a task, once for every task.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow_provider_kling.api.events import (
    EVENT_STATUSES,
    KlingEvent,
    KlingResult,
    event_from_record,
    parse_event,
    result_of,
)
from airflow_provider_kling.api.records import FAILED_STATUSES
from airflow_provider_kling.exceptions import (
    AirflowSensorTimeout,
    KlingRequestFailedError,
    KlingWaitError,
)

if TYPE_CHECKING:
    from airflow_provider_kling.api.records import KlingRequest


def result_from_event(value: Any) -> KlingResult:
    """
    The task result for an event, from a trigger or from a wait in the worker.

    :raises KlingRequestFailedError: ``failed`` or ``cancelled``; the message carries GMI's text.
    :raises AirflowSensorTimeout: ``timeout`` (so ``soft_fail=True`` skips the task).
    :raises KlingWaitError: ``error``, or something that is not an event at all.
    """
    event = parse_event(value)
    if event is None:
        raise KlingWaitError(
            f"The Kling trigger sent an event this provider does not understand: {value!r}. "
            f"Expected a dict whose 'status' is one of {sorted(EVENT_STATUSES)}."
        )
    status = event["status"]
    if status == "success":
        if not event["media_urls"]:
            raise KlingWaitError(f"The Kling trigger reported success without media URLs: {value!r}")
        return result_of(event)
    if status in FAILED_STATUSES:
        raise KlingRequestFailedError(
            event["message"], request_id=event["request_id"], status=status, error=event["error"]
        )
    if status == "timeout":
        raise AirflowSensorTimeout(event["message"])
    raise KlingWaitError(event["message"])


def result_from_record(record: KlingRequest) -> KlingResult | None:
    """The task result for a terminal record (raising as :func:`result_from_event`); ``None`` if running."""
    if not record.is_terminal:
        return None
    return result_from_event(event_from_record(record))


__all__ = ["KlingEvent", "KlingResult", "result_from_event", "result_from_record"]
