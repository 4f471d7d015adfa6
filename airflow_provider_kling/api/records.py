"""Request records: statuses, and every shape GMI is known to answer with."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Literal

from airflow_provider_kling.api.errors import KlingAPIError, KlingValidationError
from airflow_provider_kling.api.validation import validate_request_id

# GMI's statuses, the one list of them (as its SDK names them); every other set of statuses in the
# package, the simulator's too, is made from these.
#: A request GMI has not finished.
RUNNING_STATUSES = frozenset({"created", "queued", "dispatched", "processing"})
#: A request that gave its videos.
SUCCESS_STATUS = "success"
#: A request that ended without videos.
FAILED_STATUSES = frozenset({"failed", "cancelled"})
#: GMI's final statuses.
TERMINAL_STATUSES = FAILED_STATUSES | {SUCCESS_STATUS}
#: Every status GMI is known to answer with.
GMI_STATUSES = RUNNING_STATUSES | TERMINAL_STATUSES

Verdict = Literal["running", "success", "failed"]


def classify_status(status: str) -> Verdict:
    """
    Map an API status to running, success or failed.

    An unknown status counts as running: the API may add states, and every wait has a
    deadline, so guessing "still running" costs at most a timeout, never a false success.
    """
    normalized = status.strip().lower()
    if normalized == SUCCESS_STATUS:
        return "success"
    if normalized in FAILED_STATUSES:
        return "failed"
    return "running"


def is_known_status(status: str) -> bool:
    """Whether GMI's SDK lists this status; an unknown one is logged, and treated as running."""
    normalized = status.strip().lower()
    return normalized in GMI_STATUSES


@dataclass(frozen=True)
class KlingRequest:
    """
    One request-queue record, normalised from any of the shapes GMI is known to return.

    :param request_id: the id GMI gave the request.
    :param status: the raw status string (see ``classify_status``).
    :param model: the model id, when the record names it.
    :param media_urls: output video URLs, from ``outcome.media_urls`` (objects or
        strings), ``outcome.video_url`` or ``outcome.url``; empty unless the request succeeded.
    :param thumbnail_url: the preview image URL, if any.
    :param error: the failure text from ``outcome``, ``error`` or ``reason``, if any.
    :param created_at: creation time (UTC), when the record has it.
    :param updated_at: last update time (UTC), when the record has it.
    :param queued_at: queueing time (UTC), when the record has it.
    :param raw: the record exactly as received.
    """

    request_id: str
    status: str
    model: str | None = None
    media_urls: list[str] = field(default_factory=list)
    thumbnail_url: str | None = None
    error: str | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    queued_at: datetime | None = None
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False)

    @property
    def verdict(self) -> Verdict:
        """``running``, ``success`` or ``failed`` (see ``classify_status``).

        Not GMI's ``outcome`` object, which stays in ``raw["outcome"]``.
        """
        return classify_status(self.status)

    @property
    def outcome(self) -> Verdict:
        """Deprecated name of :attr:`verdict`, which says what it is: GMI's ``outcome`` is the object."""
        import warnings

        warnings.warn(
            "KlingRequest.outcome is deprecated; use KlingRequest.verdict", DeprecationWarning, stacklevel=2
        )
        return self.verdict

    @property
    def is_terminal(self) -> bool:
        """Whether the request has ended, well or badly."""
        return self.verdict != "running"

    @classmethod
    def from_record(cls, record: Any) -> KlingRequest:
        """
        Parse a record; a record without ``request_id`` or ``status`` raises
        :class:`~airflow_provider_kling.exceptions.KlingAPIError`.
        """
        if not isinstance(record, Mapping):
            raise KlingAPIError(f"Expected a JSON object for a request record, got {_describe(record)}")
        request_id = record.get("request_id")
        status = record.get("status")
        if not isinstance(request_id, str) or not request_id:
            raise KlingAPIError(f"The API answered without a request_id: {_truncate(record)}")
        try:
            # The id goes to XCom, the task state store and log lines: a hostile one stops here.
            request_id = validate_request_id(request_id)
        except KlingValidationError as err:
            raise KlingAPIError(f"The API answered with an unusable request_id: {err.problem}") from None
        if not isinstance(status, str) or not status:
            raise KlingAPIError(f"The API answered without a status for request {request_id}")
        outcome = record.get("outcome")
        model = record.get("model")
        return cls(
            request_id=request_id,
            status=status.strip().lower(),
            model=model if isinstance(model, str) else None,
            media_urls=extract_media_urls(outcome),
            thumbnail_url=_thumbnail(outcome),
            error=extract_error(record),
            created_at=_timestamp(record.get("created_at")),
            updated_at=_timestamp(record.get("updated_at")),
            queued_at=_timestamp(record.get("queued_at")),
            raw=dict(record),
        )


def extract_media_urls(outcome: Any) -> list[str]:
    """Every output URL in an outcome, whichever documented shape it takes."""
    if not isinstance(outcome, Mapping):
        return []
    urls: list[str] = []
    media = outcome.get("media_urls")
    if isinstance(media, list):
        for item in media:
            if isinstance(item, str):
                urls.append(item)
            elif isinstance(item, Mapping) and isinstance(item.get("url"), str):
                urls.append(item["url"])
    elif isinstance(media, str):
        urls.append(media)
    # Flat keys: ``video_url`` in GMI's docs, ``url`` in other public clients.
    for key in ("video_url", "url"):
        value = outcome.get(key)
        if isinstance(value, str) and value not in urls:
            urls.append(value)
    return [u for u in urls if u]


def extract_error(record: Mapping[str, Any]) -> str | None:
    """The failure text, wherever this record keeps it (``outcome``, ``error`` or ``reason``)."""
    for key in ("error", "reason"):
        value = record.get(key)
        if isinstance(value, str) and value:
            return value
        if isinstance(value, Mapping) and value:
            return _truncate(value)
    outcome = record.get("outcome")
    if isinstance(outcome, str) and outcome:
        return outcome
    if isinstance(outcome, Mapping) and not extract_media_urls(outcome):
        for key in ("error", "message", "reason", "detail"):
            value = outcome.get(key)
            if isinstance(value, str) and value:
                return value
        if outcome:
            return _truncate(outcome)
    return None


def _thumbnail(outcome: Any) -> str | None:
    if isinstance(outcome, Mapping):
        value = outcome.get("thumbnail_image_url")
        if isinstance(value, str) and value:
            return value
    return None


def _timestamp(value: Any) -> datetime | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    # Some records carry milliseconds; no real date in seconds passes 1e11 (year 5138).
    seconds = value / 1000 if value > 1e11 else value
    try:
        return datetime.fromtimestamp(seconds, tz=timezone.utc)
    except (OverflowError, OSError, ValueError):
        return None


def _describe(value: Any) -> str:
    return f"{type(value).__name__} {_truncate(value)}"


def _truncate(value: Any, limit: int = 500) -> str:
    text = str(value)
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} chars)"
