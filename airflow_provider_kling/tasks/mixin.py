"""What every Kling task shares: its hook, waiting, killing, finishing with downloads and asset events.

:class:`KlingTaskMixin` is mixed into the submit operators, the sensor and the download operator, so
each declares only its own arguments, and a wait ends the same way whichever task waited.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow_provider_kling.api.events import STILL_BILLING, KlingResult
from airflow_provider_kling.api.waiting import DEFAULT_MAX_POLL_FAILURES, Decision, WaitState, begin, step
from airflow_provider_kling.exceptions import AirflowSensorTimeout, KlingRequestFailedError, KlingWaitError
from airflow_provider_kling.tasks.ledger import STATUS_KEY, failure_entry, submitted_image, success_entry
from airflow_provider_kling.tasks.outputs import (
    DEFAULT_FILENAME,
    DEFAULT_MAX_BYTES,
    download_videos,
    set_asset_extras,
    uses_image,
)
from airflow_provider_kling.tasks.results import result_from_event

if TYPE_CHECKING:
    from airflow.sdk import BaseOperator, Context

    from airflow_provider_kling.api.records import KlingRequest
    from airflow_provider_kling.hooks.kling import KlingHook

    # Typed as an operator for mypy; at run time the mixin sits beside the real base class.
    _TaskBase = BaseOperator
else:
    _TaskBase = object

# A video takes minutes; an hour means the request is stuck (GMI can leave a request
# "queued" forever for a model that stopped serving).
DEFAULT_TIMEOUT = 3600.0
# The scheduler's own deferral timeout runs a little longer than the wait's deadline, so the
# wait's clearer "still queued at the deadline" message normally wins.
DEFER_GRACE = 120.0

__all__ = [
    "DEFAULT_MAX_BYTES",
    "DEFAULT_MAX_POLL_FAILURES",
    "DEFAULT_TIMEOUT",
    "DownloadSpec",
    "KlingTaskMixin",
    "default_deferrable",
]


def default_deferrable() -> bool:
    """The ``[operators] default_deferrable`` setting, as every deferrable operator reads it."""
    try:
        from airflow.sdk.configuration import conf
    except ImportError:  # Airflow < 3.2
        from airflow.configuration import conf
    return bool(conf.getboolean("operators", "default_deferrable", fallback=False))


@dataclass(frozen=True)
class DownloadSpec:
    """
    Where a task copies a request's videos: its ``download_<what>`` arguments, after rendering.

    :param to: ``download_to``: a local folder, a URI or an ``ObjectStoragePath``.
    :param filename: ``download_filename``: the file name template under it (``None``: the default).
    :param conn_id: ``download_conn_id``: the object store's Airflow connection, if it needs one.
    :param max_bytes: ``download_max_bytes``: the largest video accepted.
    :param content_types: accepted ``Content-Type`` prefixes; ``None`` for the hook's default.
    """

    to: Any
    filename: str | None = None
    conn_id: str | None = None
    max_bytes: int | None = DEFAULT_MAX_BYTES
    content_types: tuple[str, ...] | None = None


#: Every task's download arguments, named ``download_<what>`` on each, and their defaults.
DOWNLOAD_DEFAULTS: dict[str, Any] = {
    "download_to": None,
    "download_filename": None,
    "download_conn_id": None,
    "download_max_bytes": DEFAULT_MAX_BYTES,
}
#: The download operator's names before they were made alike (deprecated): old name, new name.
DOWNLOAD_OPERATOR_RENAMES = {
    "destination": "download_to",
    "filename": "download_filename",
    "destination_conn_id": "download_conn_id",
    "max_bytes": "download_max_bytes",
}
#: The submit operators' and the sensor's old name of the size cap (deprecated).
WAITING_TASK_RENAMES = {"max_download_bytes": "download_max_bytes"}


class _NotGiven:
    def __repr__(self) -> str:
        return "NOT_GIVEN"


#: The default of a deprecated argument, so that one given as ``None`` (no cap) is told apart.
#: The deprecated names stay in the signatures because Airflow's ``partial()`` checks them.
NOT_GIVEN: Any = _NotGiven()


def download_arguments(
    task: str, old: Mapping[str, Any], renames: Mapping[str, str], **given: Any
) -> dict[str, Any]:
    """
    A task's download arguments by their ``download_<what>`` names: ``given``, with each
    deprecated argument in ``old`` (by its name in ``renames``) that is not :data:`NOT_GIVEN`
    moved to its new name, with one ``DeprecationWarning`` naming the new one.

    :raises ValueError: a deprecated name and its new one both given (the new one's value is
        not its default).
    """
    chosen = {**DOWNLOAD_DEFAULTS, **given}
    for name, new in renames.items():
        value = old.get(name, NOT_GIVEN)
        if value is NOT_GIVEN:
            continue
        if chosen[new] != DOWNLOAD_DEFAULTS[new]:
            raise ValueError(
                f"Invalid {name}: given together with {new}, its new name. Allowed: {new} alone."
            )
        # 4: past this helper, the task's __init__ and Airflow's wrapper of it, to the DAG file.
        warnings.warn(f"{task}: {name} is deprecated; use {new}", DeprecationWarning, stacklevel=4)
        chosen[new] = value
    return chosen


class KlingTaskMixin(_TaskBase):
    """
    The part of every Kling task that is not about its own arguments.

    A task sets ``kling_conn_id`` and ``cancel_on_kill``, and overrides :meth:`download_spec` and
    :meth:`asset_extra` if it downloads or describes videos on its asset events.
    """

    kling_conn_id: str
    cancel_on_kill: bool = False

    @cached_property
    def hook(self) -> KlingHook:
        """The sync hook of the task's ``kling`` connection."""
        from airflow_provider_kling.hooks.kling import KlingHook

        return KlingHook(self.kling_conn_id)

    # --- waiting ---------------------------------------------------------------------------

    def wait_here(self, context: Context, state: WaitState) -> KlingResult:
        """Wait in this worker: the same step as the trigger, with sleeps instead of awaits."""
        decision = begin(state, time.time())
        while decision.event is None:
            time.sleep(decision.sleep)
            decision = self.poll_once(decision.state)
        return self.result_of(context, decision.event)

    def poll_once(self, state: WaitState) -> Decision:
        """Fetch the record once and decide; the decision's notes are logged here."""
        observed: KlingRequest | BaseException
        try:
            observed = self.hook.get_request(state.request_id)
        except Exception as err:  # the step decides which failures a wait survives
            observed = err
        decision = step(state, time.time(), observed)
        decision.log_to(self.log)
        return decision

    def defer_wait(self, state: WaitState, result_extra: Mapping[str, Any] | None = None) -> None:
        """
        Hand the wait to the triggerer as it stands (schedule, failures so far, last status
        included). When a worker has nothing left to do after it (:meth:`ends_in_triggerer`),
        the trigger ends the task itself, its result being the event's plus ``result_extra``;
        otherwise the task resumes in :meth:`execute_complete`.
        """
        from airflow_provider_kling.tasks.start import KlingTaskTrigger, link_classpaths
        from airflow_provider_kling.triggers.kling import KlingStatusTrigger

        trigger: KlingStatusTrigger
        if self.ends_in_triggerer():
            trigger = KlingTaskTrigger(
                state=state,
                kling_conn_id=self.kling_conn_id,
                cancel_on_kill=self.cancel_on_kill,
                result_extra=result_extra,
                links=link_classpaths(self.operator_extra_links),
            )
        else:
            trigger = KlingStatusTrigger(
                state=state, kling_conn_id=self.kling_conn_id, cancel_on_kill=self.cancel_on_kill
            )
        self.defer(
            trigger=trigger,
            method_name="execute_complete",
            timeout=timedelta(seconds=max(0.0, state.deadline - time.time()) + DEFER_GRACE),
        )

    def ends_in_triggerer(self) -> bool:
        """
        Whether the trigger ends this task when the request succeeds or fails: on Airflow 3.3+,
        when a worker would have nothing left to do (no download, no outlet asset events, no
        OpenLineage report, which only a worker sends).
        """
        from airflow_provider_kling.tasks.start import airflow_ends_tasks_in_triggerer

        # OpenLineage is checked where the wait ends (KlingTaskTrigger.ending).
        return self.download_spec() is None and not self.outlets and airflow_ends_tasks_in_triggerer()

    def execute_complete(self, context: Context, event: Any = None) -> KlingResult:
        """Resume after the trigger fired: return the result, or raise what the event says."""
        result = self.result_of(context, event)
        self.log.info("Kling request %s succeeded: %s", result["request_id"], ", ".join(result["media_urls"]))
        return self.finish(context, result)

    def result_of(self, context: Context, event: Any) -> KlingResult:
        """
        The task result of a wait's last event, from every way of waiting. A wait that ends
        without a video raises, and first gets its status entry in the videos ledger.
        """
        request_id = event.get("request_id") if isinstance(event, dict) else None
        try:
            return result_from_event(event)
        except KlingRequestFailedError as err:
            self.push_status(context, failure_entry(err.request_id, err.status, err.error))
            raise
        except (AirflowSensorTimeout, KlingWaitError) as err:
            if isinstance(request_id, str):
                status = "timeout" if isinstance(err, AirflowSensorTimeout) else "error"
                self.push_status(context, failure_entry(request_id, status, str(err)))
            raise

    def push_status(self, context: Context, entry: Mapping[str, Any]) -> None:
        """Push the status entry of how the request ended (the ledger's ``kling_status`` XCom)."""
        ti = context.get("ti")
        if ti is not None:  # None only when a test or a script calls the task outside Airflow
            ti.xcom_push(key=STATUS_KEY, value=dict(entry))

    # --- killing ---------------------------------------------------------------------------

    def kill_request(self, request_id: str | None) -> None:
        """What a killed task does about its request: cancel it if asked, else say it runs on."""
        if request_id is None:
            return
        if self.cancel_on_kill:
            self.hook.cancel_request(request_id)
        else:
            self.log.warning(STILL_BILLING, request_id)

    # --- finishing -------------------------------------------------------------------------

    def download_spec(self) -> DownloadSpec | None:
        """Where this task copies the videos, or ``None`` when it does not."""
        return None

    def asset_extra(self, result: KlingResult) -> Mapping[str, Any]:
        """
        What the outlet assets' events say about the request: request id, model, prompt,
        duration, resolution and estimated cost. Called only when the task has outlets, since
        it may cost an API call.
        """
        return {"request_id": result["request_id"]}

    def source_image(self, context: Context, request_id: str) -> str | None:
        """
        The name of the image ``request_id`` was made from, for ``{image}`` in a file name: what
        the submitting task upstream recorded. A submit operator knows its own.
        """
        return submitted_image(context["ti"], self.get_flat_relative_ids(upstream=True), request_id)

    def download(self, context: Context, result: KlingResult, spec: DownloadSpec) -> list[dict[str, Any]]:
        """Stream every video of ``result`` to ``spec``; one ``{"url", "uri", "size", "sha256"}`` each."""
        filename = spec.filename or self.render_template(DEFAULT_FILENAME, context)
        image = None
        if uses_image(filename):
            image = self.source_image(context, result["request_id"])
            if image is None:
                self.log.warning(
                    "No image name is known for Kling request %s (an inline image, or no Kling submit "
                    "upstream of this task): {image} in the file name is its request id instead",
                    result["request_id"],
                )
        files = download_videos(
            self.hook,
            request_id=result["request_id"],
            media_urls=result["media_urls"],
            destination=spec.to,
            filename=filename,
            destination_conn_id=spec.conn_id,
            max_bytes=spec.max_bytes,
            content_types=spec.content_types,
            image=image,
        )
        for file in files:
            self.log.info(
                "Saved Kling video to %s (%s bytes, sha256 %s)", file["uri"], file["size"], file["sha256"]
            )
        return files

    def finish(self, context: Context, result: KlingResult) -> KlingResult:
        """
        The last step of every Kling task that ends with a video: download it if the task was
        asked to, and describe it (:meth:`asset_extra`) on the events of the task's outlet assets.
        """
        spec = self.download_spec()
        if spec is not None:
            result["files"] = self.download(context, result, spec)
        if self.outlets:
            uris = [f["uri"] for f in result.get("files", [])]
            extra = {**self.asset_extra(result), "media_urls": result["media_urls"], "uris": uris}
            set_asset_extras(self.outlets, context, extra)
        self.push_status(context, success_entry(result))
        self._finished = result  # what get_openlineage_facets_on_complete reports
        return result

    # --- lineage -----------------------------------------------------------------------------

    #: What the task reads, for lineage: ``"image"`` (a submit), ``"request"`` or ``"videos"``.
    lineage_reads: str = "request"
    _finished: KlingResult | None = None

    def lineage_image(self) -> tuple[Any, str | None]:
        """
        Where the image this task submitted was read from, or (``None``, its description) for
        an inline one; a submit operator knows it. ``(None, None)``: the task submitted none.
        """
        return None, None

    def lineage_request_id(self) -> str | None:
        """The request this try submitted, when it ended before :meth:`finish` (no wait)."""
        return None

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """
        What this try read and made, for the OpenLineage provider (which alone calls this; see
        :doc:`/lineage`): the image, the request or the video URLs in; the request, the stored
        videos or GMI's URLs out; and the request's run facets.
        """
        from airflow_provider_kling.hooks import lineage

        result = self._finished
        request_id = result["request_id"] if result is not None else self.lineage_request_id()
        if request_id is None:
            return None
        request = lineage.request_dataset(self.hook.settings.base_url, request_id)
        image, inline = self.lineage_image()
        reads = {
            "image": [name] if (name := lineage.dataset_of(image)) else [],
            "request": [request],
            "videos": lineage.video_datasets({"media_urls": (result or {}).get("media_urls")}),
        }[self.lineage_reads]
        made = lineage.video_datasets(result) if result is not None else [request]
        described = self.asset_extra(result or {"request_id": request_id})
        return lineage.operator_lineage(reads, made, described, image_description=inline, source=request[0])
