"""The generic operator: submit any GMI model's payload, optionally wait and download."""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import timedelta
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator

from airflow_provider_kling.api import (
    DEFAULT_SCHEDULE,
    KlingAPIError,
    KlingRequest,
    PollSchedule,
    PreparedPayload,
    classify_first_frame,
    estimate_cost,
    prepare_payload,
    submitted_at,
    validate_model,
)
from airflow_provider_kling.exceptions import (
    AirflowSensorTimeout,
    KlingCostLimitExceeded,
    KlingSubmitOutcomeUnknown,
)
from airflow_provider_kling.links.kling import KlingRequestLink, KlingVideoLink
from airflow_provider_kling.outputs import (
    DEFAULT_MAX_BYTES,
    finish_result,
    request_metadata,
    set_asset_extras,
)
from airflow_provider_kling.results import result_from_event, result_from_record
from airflow_provider_kling.sensors.kling import (
    DEFAULT_TIMEOUT,
    default_deferrable,
    handle_kill,
    log_status,
)

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_provider_kling.hooks.kling import KlingHook

# The task state store key under which a try records its request, for the next try.
STATE_KEY = "kling_request_id"
# Payload keys that describe a video (for asset events); images are never copied there.
_SUMMARY_KEYS = ("prompt", "duration", "resolution")


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


class KlingSubmitOperator(BaseOperator):
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
    :param reuse_previous_request: on a retry, wait for the request an earlier try
        submitted instead of paying for a new one (Airflow 3.3's task state store).
    :param cancel_on_kill: when the task is killed, ask GMI to cancel the request (best effort).
    :param download_to: with ``wait_for_completion``, also stream the videos to this
        folder: a local path, a URI (``s3://``, ``gs://``, ``file://``, ...) or an
        ``ObjectStoragePath`` (templated). The result gains ``files``
        (``[{"url", "uri", "size", "sha256"}]``).
    :param download_filename: the file name under ``download_to`` (templated; then
        ``{request_id}`` and ``{index}`` are filled in). Default
        ``{{ run_id }}/{request_id}_{index}.mp4``. Names are sanitised so none escapes the folder.
    :param download_conn_id: the Airflow connection of the object store, if it needs one.
    :param max_download_bytes: refuse a larger video. Default 2 GiB.
    """

    template_fields: Sequence[str] = ("model", "payload", "download_to", "download_filename")
    operator_extra_links = (KlingVideoLink(), KlingRequestLink())
    ui_color = "#fbd3b7"

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
        reuse_previous_request: bool = True,
        cancel_on_kill: bool = False,
        download_to: Any = None,
        download_filename: str | None = None,
        download_conn_id: str | None = None,
        max_download_bytes: int | None = DEFAULT_MAX_BYTES,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self._request_id: str | None = None
        self._inline_payload: dict[str, Any] = {}
        self.model = model
        self.payload = self._stash_inline_payload(payload)
        self.kling_conn_id = kling_conn_id
        self.max_cost_usd = max_cost_usd
        self.wait_for_completion = wait_for_completion
        self.deferrable = default_deferrable() if deferrable is None else deferrable
        self.poll_interval = None if poll_interval is None else float(poll_interval)
        self.timeout = timeout.total_seconds() if isinstance(timeout, timedelta) else float(timeout)
        self.reuse_previous_request = reuse_previous_request
        self.cancel_on_kill = cancel_on_kill
        self.download_to = download_to
        self.download_filename = download_filename
        self.download_conn_id = download_conn_id
        self.max_download_bytes = max_download_bytes
        if (self.poll_interval is not None and self.poll_interval <= 0) or self.timeout <= 0:
            raise ValueError(
                f"poll_interval and timeout must be positive, got {poll_interval!r} and {timeout!r}"
            )
        if max_cost_usd is not None and max_cost_usd < 0:
            raise ValueError(f"max_cost_usd must be 0 or more, got {max_cost_usd!r}")
        if download_to is not None and not wait_for_completion:
            raise ValueError("download_to needs wait_for_completion=True: there is no video before then")

    @cached_property
    def hook(self) -> KlingHook:
        from airflow_provider_kling.hooks.kling import KlingHook

        return KlingHook(self.kling_conn_id)

    def _stash_inline_payload(self, payload: Any) -> Any:
        """
        Keep inline images (bytes, base64) out of the templated ``payload``, which Airflow
        renders, stores and shows in the UI; the field shows a short description instead.
        """
        if not isinstance(payload, dict):
            return payload
        shown = dict(payload)
        for key, value in payload.items():
            if is_inline_image(value):
                self._inline_payload[key] = value
                shown[key] = (
                    f"<inline image: {len(value):,} {'chars' if isinstance(value, str) else 'bytes'}>"
                )
        return shown

    def render_template_fields(self, context: Any, jinja_env: Any = None) -> None:
        super().render_template_fields(context, jinja_env)
        # A template can render to base64 (say, pulled from XCom): stash it before the
        # rendered fields are saved.
        self.payload = self._stash_inline_payload(self.payload)

    def prepare(self) -> PreparedPayload:
        """Validate the inputs and build what to submit (subclasses build the payload their way)."""
        payload = self.payload or {}
        if isinstance(payload, dict):
            payload = {**payload, **self._inline_payload}
        return prepare_payload(self.model, payload)

    def summary(self) -> dict[str, Any]:
        """Model, prompt, duration and resolution as given, for asset events; no images."""
        payload = self.payload if isinstance(self.payload, dict) else {}
        return {"model": self.model, **{k: payload[k] for k in _SUMMARY_KEYS if k in payload}}

    def execute(self, context: Context) -> Any:
        prepared = self.prepare()
        if not prepared.validated:
            self.log.info(
                "Model %s has no payload spec in this provider: the payload is sent as given, not validated",
                prepared.model,
            )
        cost = self._check_cost(prepared)
        context["ti"].xcom_push(key="estimated_cost_usd", value=cost)
        store = context.get("task_state_store")
        record = self._earlier_request(store) if self.reuse_previous_request else None
        if record is None:
            record = self._submit(prepared.model, prepared.payload, store)
            self.log.info(
                "Submitted Kling request %s: model=%s %s",
                record.request_id,
                prepared.model,
                prepared.describe(),
            )
        self._request_id = record.request_id
        context["ti"].xcom_push(key="request_id", value=record.request_id)
        if not self.wait_for_completion:
            set_asset_extras(self, context, self._metadata(record.request_id))
            return record.request_id
        result = result_from_record(record)
        if result is not None:
            return self._finish(context, result)
        if self.deferrable:
            from airflow_provider_kling.triggers.kling import KlingStatusTrigger

            self.defer(
                trigger=KlingStatusTrigger(
                    request_id=record.request_id,
                    end_time=time.time() + self.timeout,
                    kling_conn_id=self.kling_conn_id,
                    poll_interval=self.poll_interval,
                    cancel_on_kill=self.cancel_on_kill,
                    submitted_at=submitted_at(record.created_at, time.time()),
                ),
                method_name="execute_complete",
                timeout=timedelta(seconds=self.timeout + 120),
            )
        return self._finish(context, self._wait(record))

    def _check_cost(self, prepared: PreparedPayload) -> float | None:
        cost = estimate_cost(prepared.model, prepared.payload)
        shown = f"${cost:.3f}" if cost is not None else "unknown (no price for this model)"
        self.log.info("Kling request estimated cost %s", shown)
        if self.max_cost_usd is not None and (cost is None or cost > self.max_cost_usd):
            raise KlingCostLimitExceeded(
                f"Not submitted: the estimated cost {shown} is over max_cost_usd=${self.max_cost_usd:.3f}. "
                "Lower the duration or resolution, or raise max_cost_usd."
            )
        return cost

    def _submit(self, model: str, payload: dict[str, Any], store: Any) -> KlingRequest:
        try:
            record = self.hook.submit(model, payload)
        except KlingSubmitOutcomeUnknown as err:
            # A task retry would submit again and may pay twice: stop here and let a
            # person look (the message lists the requests GMI created meanwhile).
            raise KlingSubmitOutcomeUnknown(
                f"{err} {self._created_since(err.model, err.started_at)}",
                model=err.model,
                started_at=err.started_at,
                status_code=err.status_code,
            ) from err
        if store is not None:
            # Persisted before anything else can fail, so a retry finds this request.
            store.set(STATE_KEY, record.request_id)
        return record

    def _created_since(self, model: str, started: float) -> str:
        """
        Name the requests GMI created for ``model`` since ``started``, for a person to judge.

        Not adopted automatically: GMI echoes no payload, so with several tasks submitting
        at once one of them could take another's video.
        """
        # GMI stamps whole seconds with its own clock; a minute of slack covers skew.
        since = started - 60
        try:
            recent = [
                r
                for r in self.hook.list_requests(model)
                if r.created_at is not None and r.created_at.timestamp() >= since
            ]
        except Exception as err:
            return f"Listing recent requests to find it failed too: {err}"
        if not recent:
            return "GMI lists no request for this model created since then."
        ids = ", ".join(f"{r.request_id} ({r.status})" for r in recent[:20])
        return f"Requests GMI created for {model} since then: {ids}."

    def _earlier_request(self, store: Any) -> KlingRequest | None:
        """The request an earlier try of this task submitted, if it is running or succeeded."""
        previous = store.get(STATE_KEY) if store is not None else None
        if not previous:
            return None
        try:
            record = self.hook.get_request(str(previous))
        except KlingAPIError as err:
            if err.status_code != 404:
                raise
            self.log.warning("GMI no longer knows request %s from an earlier try; submitting anew", previous)
            return None
        if record.outcome == "failed":
            self.log.warning(
                "Request %s from an earlier try ended %s; submitting anew", previous, record.status
            )
            return None
        self.log.info(
            "Reusing Kling request %s (%s) from an earlier try of this task instead of paying for a new one",
            previous,
            record.status,
        )
        return record

    def on_kill(self) -> None:
        if self._request_id is not None:
            handle_kill(self, self._request_id)

    def _wait(self, submitted: KlingRequest) -> dict[str, Any]:
        request_id = submitted.request_id
        schedule = DEFAULT_SCHEDULE if self.poll_interval is None else PollSchedule.fixed(self.poll_interval)
        origin = submitted_at(submitted.created_at, time.time())
        started = time.monotonic()
        deadline = started + self.timeout
        last_status = None
        time.sleep(min(schedule.wait(time.time() - origin, polled=False), self.timeout))
        while True:
            record = self.hook.get_request(request_id)
            if record.status != last_status:
                log_status(self.log, record, time.monotonic() - started)
                last_status = record.status
            result = result_from_record(record)
            if result is not None:
                return result
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AirflowSensorTimeout(
                    f"Kling request {request_id} was still {record.status} after {self.timeout:g} s; "
                    "it may keep running (and billing) at GMI."
                )
            time.sleep(min(schedule.wait(time.time() - origin, polled=True), remaining))

    def _metadata(self, request_id: str) -> dict[str, Any]:
        summary = self.summary()
        model = validate_model(summary.pop("model"))
        return request_metadata(request_id, model, summary)

    def _finish(self, context: Context, result: dict[str, Any]) -> dict[str, Any]:
        """Download the videos if asked, and describe them on the outlet assets' events."""
        metadata = self._metadata(result["request_id"])
        result["estimated_cost_usd"] = metadata["cost_usd"]
        finished: dict[str, Any] = finish_result(self, context, result, lambda: metadata)
        return finished

    def execute_complete(self, context: Context, event: Any = None) -> dict[str, Any]:
        """Resume after the trigger fired: return the result, or raise what the event says."""
        result = result_from_event(event)
        self.log.info("Kling request %s succeeded: %s", result["request_id"], ", ".join(result["media_urls"]))
        return self._finish(context, result)
