"""The generic operator: submit any GMI model's payload, optionally wait and download."""

from __future__ import annotations

import time
import warnings
from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator

from airflow_provider_kling.api import (
    KlingRequest,
    ModelSpec,
    PollSchedule,
    PreparedPayload,
    classify_first_frame,
    prepare_payload,
    validate_byte_cap,
    validate_poll_failures,
    validate_seconds,
    validate_usd,
)
from airflow_provider_kling.api.events import event_from_record
from airflow_provider_kling.api.polling import submitted_at
from airflow_provider_kling.api.waiting import WaitState
from airflow_provider_kling.exceptions import KlingCostLimitExceeded
from airflow_provider_kling.hooks.lineage import report_read
from airflow_provider_kling.hooks.model_check import warn_if_model_differs
from airflow_provider_kling.links.kling import KlingRequestLink, KlingVideoLink
from airflow_provider_kling.tasks.ledger import COST_KEY, REQUEST_KEY, RequestEntry
from airflow_provider_kling.tasks.mixin import (
    DEFAULT_MAX_BYTES,
    DEFAULT_TIMEOUT,
    NOT_GIVEN,
    WAITING_TASK_RENAMES,
    DownloadSpec,
    KlingTaskMixin,
    default_deferrable,
    download_arguments,
)
from airflow_provider_kling.tasks.outputs import set_asset_extras
from airflow_provider_kling.tasks.submit_once import STATE_KEY, Submitter

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_provider_kling.api.events import KlingResult


def is_template(value: Any) -> bool:
    """Whether a value is a Jinja template, to be checked only after rendering."""
    return isinstance(value, str) and ("{{" in value or "{%" in value)


def is_inline_image(value: Any) -> bool:
    """Bytes, base64 or a data URI: an image that must not be stored as a rendered field."""
    if isinstance(value, bytes | bytearray | memoryview):
        return True
    if isinstance(value, str) and not is_template(value):
        try:
            return classify_first_frame(value) in ("base64", "data_uri")
        except ValueError:
            return False
    return False


def _shown(value: Any) -> str:
    unit = "base64 chars" if isinstance(value, str) else "bytes"
    return f"<inline image: {len(value):,} {unit}>"


class KlingSubmitOperator(KlingTaskMixin, BaseOperator):
    """
    Submit a request to any model on GMI's request queue, and optionally wait and download.

    Payloads of ``kling-3.0-turbo-i2v``, ``kling-3.0-turbo-t2v`` and
    ``kling-v3-image-to-video`` are checked against the model's spec before sending (unknown
    keys, required keys, values, images); any other model's payload is sent as given, with
    a logged note that it was not validated. The request id is pushed to XCom (as the
    return value and under ``request_id``), and the estimated price under
    ``estimated_cost_usd``.

    :param model: the GMI model id (templated).
    :param payload: the request payload (templated). Image fields take what
        :class:`~airflow_provider_kling.operators.kling.KlingI2VOperator`'s ``first_frame`` takes.
    :param kling_conn_id: the ``kling`` connection holding the API key.
    :param max_cost_usd: refuse, before submitting, a request whose estimated price is
        higher (:class:`~airflow_provider_kling.exceptions.KlingCostLimitExceeded`, no
        retries). A model without a known price is refused too, since it cannot be checked.
    :param wait_for_completion: also wait for the video and return
        ``{"request_id", "status", "media_urls", "outcome", "estimated_cost_usd"}``.
    :param deferrable: while waiting, free the worker slot and wait in the triggerer.
        Defaults to the ``[operators] default_deferrable`` setting.
    :param poll_interval: seconds between status checks while waiting. By default the wait
        follows :data:`~airflow_provider_kling.api.polling.DEFAULT_SCHEDULE`: first check 25 s
        after the submit, then about every 9.5 s, slowing down after 10 minutes.
    :param timeout: seconds to wait for the video before failing with
        ``AirflowSensorTimeout``. Default 3600.
    :param max_poll_failures: consecutive failed status checks (each after the hook's own
        retries) tolerated while waiting. Default 10.
    :param durable: record the request in Airflow 3.3's task state store (before and after the
        submit) so a retry waits for the request an earlier try submitted instead of paying for
        a new one, as Airflow's ``ResumableJobMixin`` does. A try whose inputs (model, payload,
        image bytes) differ from the recorded ones always submits anew. Default ``True``.
    :param reuse_succeeded: when this task already succeeded once and is cleared and run again
        with the same inputs, return the same video (``True``, the default: nothing is paid
        again) or submit a new take (``False``). Retries after a failed try always reuse a
        running or succeeded request.
    :param reuse_previous_request: deprecated name of ``durable``.
    :param cancel_on_kill: when the task is killed, ask GMI to cancel the request (best effort).
    :param download_to: with ``wait_for_completion``, also stream the videos to this
        folder: a local path, a URI (``s3://``, ``gs://``, ``file://``, ...) or an
        ``ObjectStoragePath`` (templated). The result gains ``files``
        (``[{"url", "uri", "size", "sha256"}]``).
    :param download_filename: the file name under ``download_to`` (templated; then
        ``{request_id}``, ``{index}`` and ``{image}``, the submitted image's file name without
        its suffix, are filled in). Default ``{{ run_id }}/{request_id}_{index}.mp4``. Names
        are sanitised so none escapes the folder.
    :param download_conn_id: the Airflow connection of the object store, if it needs one.
    :param download_max_bytes: refuse a larger video. Default 2 GiB.
    :param max_download_bytes: deprecated name of ``download_max_bytes`` (a ``DeprecationWarning``).
    """

    template_fields: Sequence[str] = ("model", "payload", "download_to", "download_filename")
    operator_extra_links = (KlingVideoLink(), KlingRequestLink())
    ui_color = "#fbd3b7"
    #: The task state store key of the request (``ResumableJobMixin.external_id_key``). Renaming
    #: it on a deployed operator makes in-flight retries submit anew.
    external_id_key: str = STATE_KEY
    #: Templated fields that may hold an inline image (directly, or as a dict's values).
    inline_image_fields: tuple[str, ...] = ("payload",)

    def __init__(
        self,
        *,
        model: str,
        payload: dict[str, Any] | None = None,
        kling_conn_id: str = "kling_default",
        max_cost_usd: float | None = None,
        wait_for_completion: bool = False,
        deferrable: bool | None = None,
        poll_interval: float | None = None,
        timeout: timedelta | float = DEFAULT_TIMEOUT,
        max_poll_failures: int = 10,
        durable: bool = True,
        reuse_succeeded: bool = True,
        reuse_previous_request: bool | None = None,
        cancel_on_kill: bool = False,
        download_to: Any = None,
        download_filename: str | None = None,
        download_conn_id: str | None = None,
        download_max_bytes: int | None = DEFAULT_MAX_BYTES,
        max_download_bytes: int | None = NOT_GIVEN,
        **kwargs: Any,
    ) -> None:
        download = download_arguments(
            type(self).__name__,
            {"max_download_bytes": max_download_bytes},
            WAITING_TASK_RENAMES,
            download_to=download_to,
            download_filename=download_filename,
            download_conn_id=download_conn_id,
            download_max_bytes=download_max_bytes,
        )
        super().__init__(**kwargs)
        self._request: RequestEntry | None = None
        self._prepared: PreparedPayload | None = None
        self._inline: dict[tuple[str, str | None], Any] = {}
        self.model = model
        self.payload = payload
        self.kling_conn_id = kling_conn_id
        # Caps are checked now (a NaN cap would pass every price) and again before submitting.
        self.max_cost_usd = None if max_cost_usd is None else validate_usd(max_cost_usd, "max_cost_usd")
        self.wait_for_completion = wait_for_completion
        self.deferrable = default_deferrable() if deferrable is None else deferrable
        self.poll_interval = (
            None if poll_interval is None else validate_seconds(poll_interval, "poll_interval")
        )
        self.timeout = validate_seconds(timeout, "timeout")
        self.max_poll_failures = validate_poll_failures(max_poll_failures)
        if reuse_previous_request is not None:
            warnings.warn(
                "reuse_previous_request is deprecated; use durable, the name of Airflow's ResumableJobMixin",
                DeprecationWarning,
                stacklevel=2,
            )
            durable = reuse_previous_request
        self.durable = durable
        self.reuse_succeeded = reuse_succeeded
        self.cancel_on_kill = cancel_on_kill
        self.download_to = download["download_to"]
        self.download_filename = download["download_filename"]
        self.download_conn_id = download["download_conn_id"]
        self.download_max_bytes = validate_byte_cap(download["download_max_bytes"], "download_max_bytes")
        if self.download_to is not None and not wait_for_completion:
            raise ValueError("download_to needs wait_for_completion=True: there is no video before then")
        self.hide_inline_images()

    # --- inline images -----------------------------------------------------------------------

    def hide_inline_images(self) -> None:
        """
        Keep inline images (bytes, base64) out of the templated fields, which Airflow renders,
        stores and shows in the UI; the field shows a short description instead.
        """
        for name in self.inline_image_fields:
            value = getattr(self, name)
            if is_inline_image(value):
                self._inline[(name, None)] = value
                setattr(self, name, _shown(value))
            elif isinstance(value, dict):
                shown = dict(value)
                for key, item in value.items():
                    if is_inline_image(item):
                        self._inline[(name, key)] = item
                        shown[key] = _shown(item)
                setattr(self, name, shown)

    def field_value(self, name: str) -> Any:
        """A templated field as given, inline images put back."""
        value = getattr(self, name)
        if (name, None) in self._inline:
            return self._inline[(name, None)]
        if isinstance(value, dict):
            return {k: self._inline.get((name, k), v) for k, v in value.items()}
        return value

    def render_template_fields(self, context: Any, jinja_env: Any = None) -> None:
        super().render_template_fields(context, jinja_env)
        # A template can render to base64 (say, pulled from XCom): hide it before the
        # rendered fields are saved.
        self.hide_inline_images()

    # --- what is submitted -------------------------------------------------------------------

    def payload_spec(self) -> ModelSpec | None:
        """The rules the payload is checked by; ``None``: the model's own, if it has any."""
        return None

    def build_payload(self) -> Any:
        """The payload as the DAG gave it, inline images put back (subclasses build theirs)."""
        return self.field_value("payload") or {}

    def prepare(self) -> PreparedPayload:
        """
        The one pass over the inputs: the payload checked by its spec (each field once, the
        image read once), with its summary, price and image name.
        """
        return prepare_payload(self.model, self.build_payload(), spec=self.payload_spec())

    def source_image(self, context: Context, request_id: str) -> str | None:
        """The name of the image this task submitted, from its request entry."""
        request = self.submitted(context)
        return request.image if request else None

    def asset_extra(self, result: KlingResult) -> Mapping[str, Any]:
        # Called from finish(), after submitted() read the request entry.
        return self._request.asset_extra() if self._request else {"request_id": result["request_id"]}

    def download_spec(self) -> DownloadSpec | None:
        if self.download_to is None:
            return None
        return DownloadSpec(
            self.download_to, self.download_filename, self.download_conn_id, self.download_max_bytes
        )

    # --- running -----------------------------------------------------------------------------

    def execute(self, context: Context) -> Any:
        ti = context["ti"]
        warn_if_model_differs(self.hook, self.model, self.log)
        prepared = self.prepare()
        self._prepared = prepared
        report_read(self.hook, prepared.image_source)
        if not prepared.validated:
            self.log.info(
                "Model %s has no payload spec in this provider: the payload is sent as given, not validated",
                prepared.model,
            )
        self.check_cost(prepared)
        ti.xcom_push(key=COST_KEY, value=prepared.estimated_cost_usd)
        submitter = self.submitter(context)
        answer = submitter.request(prepared.model, prepared.payload, prepared.log_line())
        self._request = RequestEntry.of(
            prepared, answer.request_id, submitted_at(answer.created_at, time.time())
        )
        ti.xcom_push(key="request_id", value=answer.request_id)
        ti.xcom_push(key=REQUEST_KEY, value=self._request.to_xcom())
        if not self.wait_for_completion:
            if self.outlets:
                set_asset_extras(self.outlets, context, self._request.asset_extra())
            submitter.completed()
            return answer.request_id
        return self._wait(context, answer)

    def submitter(self, context: Context) -> Submitter:
        """The submit-once logic, over this try's task state store."""
        return Submitter(
            self.hook,
            context.get("task_state_store"),
            self.log,
            durable=self.durable,
            reuse_succeeded=self.reuse_succeeded,
            key=self.external_id_key,
        )

    def _wait(self, context: Context, record: KlingRequest) -> KlingResult:
        # A submit answered "success" may come without its outcome (GMI's synchronous models):
        # then the record is fetched like any running request.
        if record.media_urls or record.verdict == "failed":
            return self.finish(context, self.result_of(context, event_from_record(record)))
        state = WaitState(
            request_id=record.request_id,
            submitted_at=self._request.submitted_at if self._request else time.time(),
            deadline=time.time() + self.timeout,
            schedule=PollSchedule.for_interval(self.poll_interval),
            max_failures=self.max_poll_failures,
        )
        if self.deferrable:
            cost = self._request.estimated_cost_usd if self._request else None
            self.defer_wait(state, result_extra={"estimated_cost_usd": cost})
        return self.finish(context, self.wait_here(context, state))

    def ends_in_triggerer(self) -> bool:
        # reuse_succeeded=False reads the success that finish() records in the task state store,
        # which only a worker writes.
        return (self.reuse_succeeded or not self.durable) and super().ends_in_triggerer()

    def finish(self, context: Context, result: KlingResult) -> KlingResult:
        request = self.submitted(context)
        result["estimated_cost_usd"] = request.estimated_cost_usd if request else None
        finished = super().finish(context, result)
        self.submitter(context).completed()
        return finished

    def submitted(self, context: Context) -> RequestEntry | None:
        """
        The request entry of this task's request: the one ``execute`` made, or, in a task resumed from
        the triggerer (a new operator object), the one it pushed to XCom before deferring.
        ``None`` only if that XCom is gone: the video is still returned, without its price.
        """
        if self._request is None:
            ti = context["ti"]
            pulled = ti.xcom_pull(task_ids=self.task_id, key=REQUEST_KEY, map_indexes=ti.map_index)
            self._request = RequestEntry.from_xcom(pulled)
        if self._request is None:
            self.log.warning(
                "No %s XCom of this task: the result and asset events have no price", REQUEST_KEY
            )
        return self._request

    def check_cost(self, prepared: PreparedPayload) -> None:
        """Refuse, before anything is paid, a request whose price is not within ``max_cost_usd``."""
        # Checked again here: the attribute may have been set or rendered since __init__.
        cap = None if self.max_cost_usd is None else validate_usd(self.max_cost_usd, "max_cost_usd")
        cost = prepared.estimated_cost_usd
        shown = f"${cost:.3f}" if cost is not None else "unknown (no price for this model)"
        self.log.info("Kling request estimated cost %s", shown)
        # "Not within the cap" rather than "over it", so a value no comparison holds for stops.
        if cap is not None and not (cost is not None and cost <= cap):
            raise KlingCostLimitExceeded(
                f"Not submitted: the estimated cost {shown} is over max_cost_usd=${cap:.3f}. "
                "Lower the duration or resolution, or raise max_cost_usd."
            )

    def on_kill(self) -> None:
        self.kill_request(self._request.request_id if self._request else None)

    # --- lineage (KlingTaskMixin.get_openlineage_facets_on_complete) -------------------------

    lineage_reads = "image"

    def lineage_image(self) -> tuple[Any, str | None]:
        prepared = self._prepared
        if prepared is not None:  # read once, in this process's pass
            source = prepared.image_source
            inline = None if source is not None else next(iter(prepared.images.values()), None)
            return source, inline and f"inline {inline}"
        # A try resumed from the triggerer is a new operator object, which never prepared.
        from airflow_provider_kling.hooks.lineage import image_of

        payload = self.build_payload()
        return image_of(
            payload.get("first_frame", payload.get("image")) if isinstance(payload, dict) else None
        )

    def lineage_request_id(self) -> str | None:
        return self._request.request_id if self._request else None


__all__ = ["STATE_KEY", "KlingSubmitOperator"]
