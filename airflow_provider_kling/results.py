"""
Turn a request record or a trigger event into the task's result, or into the right error.

Shared by the operator and the sensor so that both end a wait the same way.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from airflow_provider_kling.api import KlingAPIError, KlingRequest
from airflow_provider_kling.exceptions import (
    AirflowSensorTimeout,
    KlingRequestFailedError,
    KlingTriggerEventError,
)

EVENT_STATUSES = frozenset({"success", "failed", "cancelled", "timeout", "error"})
STILL_BILLING = (
    "Task killed, but Kling request %s keeps running at GMI and is billed. "
    "Set cancel_on_kill=True to try cancelling it."
)


def loggable_record(record: Mapping[str, Any]) -> dict[str, Any]:
    """The record minus the payload echo, which can hold a multi-megabyte base64 image."""
    return {k: ("<omitted>" if k == "payload" else v) for k, v in record.items()}


def result_from_record(record: KlingRequest) -> dict[str, Any] | None:
    """
    The task result for a terminal record, ``None`` while it runs.

    :raises KlingRequestFailedError: the request failed or was cancelled; a cancelled
        request is never a success.
    :raises KlingAPIError: GMI reports success but names no video.
    """
    if record.outcome == "running":
        return None
    if record.outcome == "failed":
        raise KlingRequestFailedError(
            f"Kling request {record.request_id} ended {record.status}: "
            f"{record.error or 'GMI gave no reason'}. "
            f"Record: {loggable_record(record.raw)}",
            request_id=record.request_id,
            status=record.status,
            error=record.error,
        )
    if not record.media_urls:
        raise KlingAPIError(
            f"GMI reports Kling request {record.request_id} succeeded but its outcome names no video URL. "
            f"Record: {loggable_record(record.raw)}"
        )
    return record.to_result()


def event_from_record(record: KlingRequest) -> dict[str, Any]:
    """The trigger event for a terminal record (JSON-safe)."""
    message = f"Kling request {record.request_id} ended {record.status}"
    if record.outcome == "failed":
        message += f": {record.error or 'GMI gave no reason'}. Record: {loggable_record(record.raw)}"
    elif not record.media_urls:
        return {
            "status": "error",
            "request_id": record.request_id,
            "media_urls": [],
            "message": f"GMI reports Kling request {record.request_id} succeeded but its outcome names no "
            f"video URL. Record: {loggable_record(record.raw)}",
        }
    event = {
        "status": record.status if record.outcome == "failed" else "success",
        "request_id": record.request_id,
        "media_urls": list(record.media_urls),
        "message": message,
        "outcome": record.to_result()["outcome"],
    }
    if record.outcome == "failed":
        event["error"] = record.error
    return event


def result_from_event(event: Any) -> dict[str, Any]:
    """
    The task result for a trigger event.

    :raises KlingRequestFailedError: ``failed`` or ``cancelled``.
    :raises AirflowSensorTimeout: ``timeout`` (so ``soft_fail=True`` skips the task).
    :raises KlingTriggerEventError: ``error``, or an event without a known status.
    """
    if not isinstance(event, Mapping) or event.get("status") not in EVENT_STATUSES:
        raise KlingTriggerEventError(
            f"The Kling trigger sent an event this provider does not understand: {event!r}. "
            f"Expected a dict whose 'status' is one of {sorted(EVENT_STATUSES)}."
        )
    status = event["status"]
    request_id = str(event.get("request_id", "<unknown>"))
    message = str(event.get("message") or f"Kling request {request_id} ended {status}")
    if status == "success":
        urls = event.get("media_urls")
        if not isinstance(urls, list) or not urls:
            raise KlingTriggerEventError(f"The Kling trigger reported success without media URLs: {event!r}")
        outcome = event.get("outcome")
        return {
            "request_id": request_id,
            "status": "success",
            "media_urls": [str(u) for u in urls],
            "outcome": outcome if isinstance(outcome, dict) else {},
        }
    if status in ("failed", "cancelled"):
        raise KlingRequestFailedError(message, request_id=request_id, status=status, error=event.get("error"))
    if status == "timeout":
        raise AirflowSensorTimeout(message)
    raise KlingTriggerEventError(message)
