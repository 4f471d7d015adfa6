"""The videos ledger: the entries every Kling task writes for the "Kling videos" view, under two XCom keys.

The view (:mod:`airflow_provider_kling.plugins.kling`) reads only these entries from the metadata
database: it never calls GMI, so a page load costs nothing and never needs the API key.

* :data:`REQUEST_KEY`, pushed once by the task that submitted: what was asked for and its
  estimated price. One such entry is one row of the view, and the unit its totals add up.
* :data:`STATUS_KEY`, pushed by whichever task learned how the request ended (the submit
  operator, the sensor or the download operator): GMI's status, its error text, the video
  URLs, the thumbnail and the copies in the user's storage.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from airflow_provider_kling.api.models import PreparedPayload

#: XCom key of the submitting task's request entry: request id, model, prompt, duration, resolution, cost.
REQUEST_KEY = "kling_request"
#: XCom key of a request's status entry, pushed by the task that saw it end.
STATUS_KEY = "kling_status"
#: The one key of a request's estimated price, in its request entry, the task's result, its own XCom and
#: the asset events.
COST_KEY = "estimated_cost_usd"
#: The name asset events used for the price before 0.x; still written beside :data:`COST_KEY` so
#: a downstream DAG reading it keeps working. Deprecated.
LEGACY_COST_KEY = "cost_usd"


@dataclass(frozen=True)
class RequestEntry:
    """
    One submitted request as every step after the submit reads it: the ``kling_request`` XCom
    (a row of the Kling videos view), the task's result price and its asset events.

    :param request_id: the id GMI gave.
    :param model: the model id.
    :param prompt: the prompt sent (``None`` for none).
    :param duration: the seconds asked for, as sent (``"5"``).
    :param resolution: the resolution asked for.
    :param estimated_cost_usd: the price checked against ``max_cost_usd`` (``None``: unknown).
    :param submitted_at: when GMI accepted the request (Unix time).
    :param image: the source image's name without suffix (see
        :func:`~airflow_provider_kling.api.image_stem`), so a download elsewhere in the DAG can
        name the video after it; ``None`` for an inline image.
    """

    request_id: str
    model: str | None
    prompt: str | None
    duration: str | None
    resolution: str | None
    estimated_cost_usd: float | None
    submitted_at: float
    image: str | None = None

    @classmethod
    def of(cls, prepared: PreparedPayload, request_id: str, submitted_at: float) -> RequestEntry:
        """The entry of a prepared payload GMI accepted as ``request_id``."""
        return cls(
            request_id=request_id,
            model=prepared.model,
            prompt=prepared.summary["prompt"],
            duration=prepared.summary["duration"],
            resolution=prepared.summary["resolution"],
            estimated_cost_usd=prepared.estimated_cost_usd,
            submitted_at=submitted_at,
            image=prepared.image,
        )

    @classmethod
    def from_xcom(cls, value: Any) -> RequestEntry | None:
        """The entry :meth:`to_xcom` pushed (by this version or the previous one), or ``None``."""
        if not isinstance(value, Mapping) or not isinstance(value.get("request_id"), str):
            return None
        cost = value.get(COST_KEY)
        return cls(
            request_id=value["request_id"],
            model=value.get("model"),
            prompt=value.get("prompt"),
            duration=value.get("duration"),
            resolution=value.get("resolution"),
            estimated_cost_usd=float(cost) if isinstance(cost, int | float) else None,
            submitted_at=float(value.get("submitted_at") or 0.0),
            image=value.get("image"),
        )

    def to_xcom(self) -> dict[str, Any]:
        """The ``kling_request`` XCom value."""
        return asdict(self)

    def asset_extra(self) -> dict[str, Any]:
        """What the asset events say about the request (images never; see :data:`LEGACY_COST_KEY`)."""
        shown = ("request_id", "model", "prompt", "duration", "resolution", COST_KEY)
        return {key: getattr(self, key) for key in shown}


def submitted_image(ti: Any, task_ids: Iterable[str], request_id: str) -> str | None:
    """
    The source image name the task that submitted ``request_id`` recorded, looked up among
    ``task_ids`` (a download's upstream tasks) at the caller's own map index: the mapped
    submit ``i`` made the request the mapped download ``i`` gets. ``None`` if none did.
    """
    for task_id in sorted(task_ids):
        # The map index is explicit: left out, Airflow 3.3 pulls every index as a list.
        found = ti.xcom_pull(task_ids=task_id, key=REQUEST_KEY, map_indexes=ti.map_index)
        for entry in found if isinstance(found, list) else [found]:
            if isinstance(entry, Mapping) and entry.get("request_id") == request_id:
                image = entry.get("image")
                return image if isinstance(image, str) and image else None
    return None


def success_entry(result: Mapping[str, Any]) -> dict[str, Any]:
    """The status entry of a finished request, from a task's result (``KlingResult``)."""
    gmi_outcome = result.get("outcome")  # GMI's own outcome object, passed through
    thumbnail = gmi_outcome.get("thumbnail_image_url") if isinstance(gmi_outcome, Mapping) else None
    return {
        "request_id": result["request_id"],
        "status": str(result.get("status") or "success"),
        "error": None,
        "media_urls": [str(u) for u in result.get("media_urls") or []],
        "thumbnail_url": thumbnail if isinstance(thumbnail, str) else None,
        "uris": [_absolute(str(f["uri"])) for f in result.get("files") or [] if isinstance(f, Mapping)],
    }


def _absolute(uri: str) -> str:
    # A relative local path means something only in this worker's folder; the api-server,
    # which serves the copy, runs elsewhere.
    return uri if "://" in uri else os.path.abspath(uri)


def failure_entry(request_id: str, status: str, error: str | None) -> dict[str, Any]:
    """
    The status entry of a request that did not give a video.

    :param status: GMI's ``failed`` or ``cancelled``, or ``timeout`` / ``error`` for a wait
        that ended without GMI's verdict.
    :param error: GMI's error text, or what ended the wait.
    """
    return {
        "request_id": request_id,
        "status": status,
        "error": error,
        "media_urls": [],
        "thumbnail_url": None,
        "uris": [],
    }


__all__ = [
    "COST_KEY",
    "LEGACY_COST_KEY",
    "REQUEST_KEY",
    "STATUS_KEY",
    "RequestEntry",
    "failure_entry",
    "submitted_image",
    "success_entry",
]
