"""What every Kling task records for the "Kling videos" view, under two XCom keys.

The view (:mod:`airflow_provider_kling.plugins.kling`) reads only these records from the metadata
database: it never calls GMI, so a page load costs nothing and never needs the API key.

* :data:`REQUEST_KEY`, pushed once by the task that submitted: what was asked for and its
  estimated price. One such record is one row of the view, and the unit its totals add up.
* :data:`STATUS_KEY`, pushed by whichever task learned how the request ended (the submit
  operator, the sensor or the download operator): GMI's status, its error text, the video
  URLs, the thumbnail and the copies in the user's storage.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from typing import Any

#: XCom key of the submitting task's record: request id, model, prompt, duration, resolution, cost.
REQUEST_KEY = "kling_request"
#: XCom key of a request's outcome, pushed by the task that saw it end.
STATUS_KEY = "kling_status"


def request_record(
    metadata: Mapping[str, Any], submitted_at: float, image: str | None = None
) -> dict[str, Any]:
    """
    The row record, from :func:`~airflow_provider_kling.outputs.request_metadata`.

    :param metadata: request id, model, prompt, duration, resolution and ``cost_usd``.
    :param submitted_at: when GMI accepted the request (Unix time).
    :param image: the source image's name without suffix (see
        :func:`~airflow_provider_kling.api.image_stem`), so a download elsewhere in
        the DAG can name the video after it; ``None`` for an inline image.
    """
    return {
        "request_id": metadata["request_id"],
        "model": metadata.get("model"),
        "prompt": metadata.get("prompt"),
        "duration": metadata.get("duration"),
        "resolution": metadata.get("resolution"),
        "estimated_cost_usd": metadata.get("cost_usd"),
        "submitted_at": submitted_at,
        "image": image,
    }


def recorded_image(ti: Any, task_ids: Iterable[str], request_id: str) -> str | None:
    """
    The source image name the task that submitted ``request_id`` recorded, looked up among
    ``task_ids`` (a download's upstream tasks) at the caller's own map index: the mapped
    submit ``i`` made the request the mapped download ``i`` gets. ``None`` if none did.
    """
    for task_id in sorted(task_ids):
        # The map index is explicit: left out, Airflow 3.3 pulls every index as a list.
        found = ti.xcom_pull(task_ids=task_id, key=REQUEST_KEY, map_indexes=ti.map_index)
        for record in found if isinstance(found, list) else [found]:
            if isinstance(record, Mapping) and record.get("request_id") == request_id:
                image = record.get("image")
                return image if isinstance(image, str) and image else None
    return None


def success_record(result: Mapping[str, Any]) -> dict[str, Any]:
    """The outcome of a finished request, from a task's result (``KlingResult``)."""
    outcome = result.get("outcome")
    thumbnail = outcome.get("thumbnail_image_url") if isinstance(outcome, Mapping) else None
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


def failure_record(request_id: str, status: str, error: str | None) -> dict[str, Any]:
    """
    The outcome of a request that did not give a video.

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
    "REQUEST_KEY",
    "STATUS_KEY",
    "failure_record",
    "recorded_image",
    "request_record",
    "success_record",
]
