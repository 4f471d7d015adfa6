"""GMI's wire format: the JSON the simulator answers for a request, as GMI would send it.

Everything that decides the shape of an answer lives here: the submit answer, the full record, the
outcome shapes a success can take and the places a failure's text can go. :mod:`.state` decides *what*
happened to a request and when; this module only renders it, so the request lifecycle can be tested
without caring about shapes, and a new shape GMI is seen to send is added in one place.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from airflow_provider_kling.api import RUNNING_STATUSES, TERMINAL_STATUSES
from airflow_provider_kling.testing.media import thumbnail_extension

if TYPE_CHECKING:
    from airflow_provider_kling.testing.config import SimulatorConfig
    from airflow_provider_kling.testing.state import SubmittedRequest

#: Where a success's video URL goes (see ``SimulatorConfig.outcome_shape``).
OUTCOME_SHAPES = ("media_objects", "media_strings", "video_url", "url")
#: Where a failure's text goes (see ``SimulatorConfig.failure_shape``).
FAILURE_SHAPES = ("outcome_object", "outcome_string", "error_field", "reason_field")
#: Statuses a submit answer may carry for a request that has not finished yet (GMI has not
#: started on it, so never ``processing``).
SUBMIT_STATUSES = tuple(sorted(RUNNING_STATUSES - {"processing"}))
#: Which keys a submit answer for an unfinished request has (see ``SimulatorConfig.submit_shape``).
SUBMIT_SHAPES = ("standard", "minimal")
#: What a GET record's ``payload`` is (see ``SimulatorConfig.payload_echo``).
PAYLOAD_ECHOES = ("verbatim", "empty", "absent")
#: GMI's answer (HTTP 500) to some invalid parameter values, and to genuine backend trouble.
BACKEND_ERROR = "Backend error (400). Please try again."
SIM_ORG_ID = "00000000-0000-4000-8000-00000000a11f"
SIM_USER_ID = "00000000-0000-4000-8000-0000000051a1"


def record(request: SubmittedRequest, config: SimulatorConfig, now: float, base_url: str) -> dict[str, Any]:
    """The ``GET /requests/{id}`` body for a request as of ``now``."""
    status, since = request.status_at(now)
    created = int(request.submitted_at)
    body: dict[str, Any] = {
        "request_id": request.request_id,
        "org_id": request.organization_id or SIM_ORG_ID,
        "user_id": SIM_USER_ID,
        "model": request.model,
        "status": status,
        "is_public": False,
        "payload": dict(request.payload) if config.payload_echo == "verbatim" else {},
        "outcome": None,
        "created_at": created,
        "updated_at": int(since),
        "queued_at": created,
        "qworker_id": "" if status == "queued" else "sim-qworker-0",
    }
    if config.payload_echo == "absent":
        del body["payload"]
    if status == "success":
        body["outcome"] = outcome(request, config, base_url)
    elif status == "failed":
        error = f"simulated failure: {request.message}"
        shape = config.failure_shape
        if shape == "outcome_object":
            body["outcome"] = {"error": error}
        elif shape == "outcome_string":
            body["outcome"] = error
        else:
            body["error" if shape == "error_field" else "reason"] = error
    return body


def submit_answer(
    request: SubmittedRequest, config: SimulatorConfig, now: float, base_url: str
) -> dict[str, Any]:
    """The ``POST /requests`` body: the short submit record, or the full record if already terminal.

    A synchronous request is terminal too, but GMI answers it with the short record carrying the terminal
    status and no ``outcome``: the outcome comes with a GET.
    """
    full = record(request, config, now, base_url)
    terminal = full["status"] in TERMINAL_STATUSES
    if terminal and not request.sync:
        return full
    status = full["status"] if terminal else config.submit_status
    if config.submit_shape == "minimal":
        return {"request_id": request.request_id, "status": status}
    times = {key: full[key] for key in ("created_at", "updated_at", "queued_at")}
    return {"request_id": request.request_id, "model": request.model, "status": status, **times}


def outcome(request: SubmittedRequest, config: SimulatorConfig, base_url: str) -> dict[str, Any]:
    """A success's ``outcome`` in the request's shape, with URLs under the media base URL."""
    base = (config.media_base_url or base_url).rstrip("/")
    video = f"{base}/media/{request.request_id}/sample_0.mp4"
    thumbnail = f"{base}/media/{request.request_id}/thumbnail.{thumbnail_extension()}"
    if request.outcome_shape == "media_strings":
        return {"media_urls": [video]}
    if request.outcome_shape == "video_url":
        return {"video_url": video, "thumbnail_image_url": thumbnail}
    if request.outcome_shape == "url":
        return {"url": video}
    return {"media_urls": [{"id": "0", "url": video}], "thumbnail_image_url": thumbnail}


def list_answer(records: list[dict[str, Any]]) -> dict[str, Any]:
    """The ``GET /requests`` body."""
    return {"requests": records, "total": len(records)}


def models_answer(model_ids: Iterable[str]) -> dict[str, Any]:
    """The ``GET /models`` body."""
    return {"model_ids": list(model_ids)}


def error_body(message: str) -> dict[str, Any]:
    """GMI's body for an HTTP-level error."""
    return {"error": message}
