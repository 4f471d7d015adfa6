"""The one shape a finished wait takes, and the one wording of each way a wait can end.

Every wait (the trigger, the operator's own wait, the sensor in poke or reschedule mode) ends in a
:class:`KlingEvent`; :mod:`airflow_provider_kling.tasks.results` turns it into the task's result or its
exception. The event is JSON-safe, since the triggerer sends it to the scheduler.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Literal, TypedDict

from airflow_provider_kling.api.records import TERMINAL_STATUSES

if TYPE_CHECKING:
    from airflow_provider_kling.api.records import KlingRequest

#: How a wait ends without GMI's verdict: its deadline passed, or it could not go on.
WAIT_END_STATUSES = frozenset({"timeout", "error"})
#: Every way a wait ends: one of GMI's final statuses, or one of the wait's own.
EVENT_STATUSES = TERMINAL_STATUSES | WAIT_END_STATUSES
# The same set spelled for the type checker; tests/unit/test_architecture.py checks they agree.
EventStatus = Literal["success", "failed", "cancelled", "timeout", "error"]

#: Logged with the request id when a task is killed but its request runs on.
STILL_BILLING = (
    "Task killed, but Kling request %s keeps running at GMI and is billed. "
    "Set cancel_on_kill=True to try cancelling it."
)


class KlingEvent(TypedDict):
    """
    How a wait ended.

    :param status: ``success``; ``failed`` or ``cancelled`` (GMI's verdict); ``timeout`` (the
        deadline passed); ``error`` (the wait could not go on: bad credentials, too many failed
        polls, a success that names no video).
    :param request_id: the request waited for.
    :param message: what happened, in words for the task log.
    :param media_urls: the video URLs (success only).
    :param outcome: GMI's own ``outcome`` object (success only, else ``{}``).
    :param error: GMI's failure text (``failed``/``cancelled`` only).
    :param model: the model GMI's last record of the request names (``None`` without one).
    :param submitted: what that record echoes of the payload, only the keys that describe a
        video (``DESCRIBED_KEYS``), never an image: so a task describes the video from the
        record its wait already read, with no second fetch.
    """

    status: EventStatus
    request_id: str
    message: str
    media_urls: list[str]
    outcome: dict[str, Any]
    error: str | None
    model: str | None
    submitted: dict[str, Any]


class KlingResult(TypedDict, total=False):
    """
    What a Kling task that waited returns to XCom.

    ``request_id``, ``status`` (``success``), ``media_urls`` and ``outcome`` (GMI's own object)
    are always there; ``estimated_cost_usd`` comes from the submit operators, ``files``
    (``[{"url", "uri", "size", "sha256"}]``) when the task downloaded the videos.
    """

    request_id: str
    status: str
    media_urls: list[str]
    outcome: dict[str, Any]
    estimated_cost_usd: float | None
    files: list[dict[str, Any]]


#: The payload keys that describe a video, for asset events and the Kling videos view.
DESCRIBED_KEYS = ("prompt", "duration", "resolution")


def loggable_record(record: Mapping[str, Any]) -> dict[str, Any]:
    """The record minus the payload echo, which can hold a multi-megabyte base64 image."""
    return {k: ("<omitted>" if k == "payload" else v) for k, v in record.items()}


def make_event(
    status: EventStatus,
    request_id: str,
    message: str,
    *,
    media_urls: list[str] | None = None,
    outcome: dict[str, Any] | None = None,
    error: str | None = None,
    model: str | None = None,
    submitted: Mapping[str, Any] | None = None,
) -> KlingEvent:
    """An event with every key present, so readers never guess at a missing one."""
    return {
        "status": status,
        "request_id": request_id,
        "message": message,
        "media_urls": list(media_urls or []),
        "outcome": dict(outcome or {}),
        "error": error,
        "model": model,
        "submitted": described(submitted),
    }


def described(payload: Any) -> dict[str, Any]:
    """
    The keys of a payload (or GMI's echo of it) that describe a video. Only plain values are
    kept: the event crosses the triggerer's database, and an echo is GMI's to shape.
    """
    if not isinstance(payload, Mapping):
        return {}
    return {k: payload[k] for k in DESCRIBED_KEYS if isinstance(payload.get(k), str | int | float)}


def event_from_record(record: KlingRequest) -> KlingEvent:
    """
    The event for a terminal record.

    A cancelled request is never a success, and a success that names no video is an ``error``:
    there is nothing to return.
    """
    rid = record.request_id
    # What the record says was submitted, so describing the video needs no second fetch.
    seen: dict[str, Any] = {"model": record.model, "submitted": record.raw.get("payload")}
    if record.verdict == "failed":
        reason = record.error or "GMI gave no reason"
        status: EventStatus = "cancelled" if record.status == "cancelled" else "failed"
        return make_event(
            status,
            rid,
            f"Kling request {rid} ended {record.status}: {reason}. Record: {loggable_record(record.raw)}",
            error=record.error,
            **seen,
        )
    if not record.media_urls:
        return make_event(
            "error",
            rid,
            f"GMI reports Kling request {rid} succeeded but its outcome names no video URL. "
            f"Record: {loggable_record(record.raw)}",
            **seen,
        )
    outcome = record.raw.get("outcome")
    return make_event(
        "success",
        rid,
        f"Kling request {rid} succeeded: {', '.join(record.media_urls)}",
        media_urls=record.media_urls,
        outcome=dict(outcome) if isinstance(outcome, Mapping) else {},
        **seen,
    )


def timeout_event(request_id: str, last_status: str | None, waited: float) -> KlingEvent:
    """The deadline passed while the request was still running (or could not be read)."""
    return make_event(
        "timeout",
        request_id,
        f"Kling request {request_id} was still {last_status or 'unreachable'} at the deadline, "
        f"{waited:.0f} s after it was submitted; it may keep running (and billing) at GMI. "
        "A request stuck in 'queued' usually means the model is not serving.",
    )


def error_event(request_id: str, message: str) -> KlingEvent:
    """The wait cannot go on; ``message`` says why and what to fix."""
    return make_event("error", request_id, message)


def result_of(event: KlingEvent) -> KlingResult:
    """The task result of a ``success`` event."""
    return {
        "request_id": event["request_id"],
        "status": "success",
        "media_urls": list(event["media_urls"]),
        "outcome": dict(event["outcome"]),
    }


def parse_event(value: Any) -> KlingEvent | None:
    """
    Read an event that crossed a process boundary; ``None`` when it is not one.

    Missing optional keys are filled in, so an event serialized by an earlier version of the
    provider (which left out ``outcome`` and ``error`` on some statuses, and ``model`` and
    ``submitted`` on all) still reads.
    """
    if not isinstance(value, Mapping) or value.get("status") not in EVENT_STATUSES:
        return None
    urls = value.get("media_urls")
    outcome = value.get("outcome")
    error = value.get("error")
    model = value.get("model")
    request_id = str(value.get("request_id") or "<unknown>")
    status: EventStatus = value["status"]
    return make_event(
        status,
        request_id,
        str(value.get("message") or f"Kling request {request_id} ended {status}"),
        media_urls=[str(u) for u in urls] if isinstance(urls, list) else [],
        outcome=dict(outcome) if isinstance(outcome, Mapping) else {},
        error=str(error) if error is not None else None,
        model=model if isinstance(model, str) else None,
        submitted=value.get("submitted"),
    )
