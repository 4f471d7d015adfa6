"""The operator that turns an image into a video with Kling 3.0 Turbo."""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import timedelta
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator

from airflow_provider_kling.api import (
    I2V_MODEL,
    KlingAPIError,
    KlingRequest,
    classify_first_frame,
    estimate_cost,
    prepare_first_frame,
    validate_duration,
    validate_model,
    validate_prompt,
    validate_resolution,
)
from airflow_provider_kling.exceptions import AirflowSensorTimeout, KlingSubmitOutcomeUnknown
from airflow_provider_kling.links.kling import KlingVideoLink
from airflow_provider_kling.results import result_from_event, result_from_record
from airflow_provider_kling.retries import KlingSubmitUnknownError
from airflow_provider_kling.sensors.kling import (
    DEFAULT_POKE_INTERVAL,
    DEFAULT_TIMEOUT,
    default_deferrable,
    handle_kill,
)

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_provider_kling.hooks.kling import KlingHook


# The task state store key under which a try records its request, for the next try.
STATE_KEY = "kling_request_id"


def _is_template(value: Any) -> bool:
    return isinstance(value, str) and ("{{" in value or "{%" in value)


def _is_inline_image(value: Any) -> bool:
    if isinstance(value, bytes | bytearray | memoryview):
        return True
    if isinstance(value, str) and not _is_template(value):
        try:
            return classify_first_frame(value) in ("base64", "data_uri")
        except ValueError:
            return False
    return False


class KlingI2VOperator(BaseOperator):
    """
    Submit an image-to-video request to Kling on GMI Cloud, and optionally wait for the video.

    Every input is checked before the request is sent, so a bad value costs nothing and
    the error names the argument to fix. The request id is pushed to XCom (as the
    return value and under the key ``request_id``) as soon as GMI accepts the request.

    :param first_frame: the image to animate (templated when a path or URL): an http(s)
        URL (sent as is), base64 text or a ``data:image/...;base64,`` URI, a local file
        path, ``bytes``, or an ``ObjectStoragePath`` (``s3://``, ``gs://``, ...). Files
        are read when the task runs, never while the DAG is parsed, and must be JPEG or
        PNG (checked by content) up to 10 MB. Inline images are kept out of the rendered
        fields, logs and XCom; only their size and a hash are shown.
    :param prompt: the motion to create, up to 2,500 characters (templated). Optional.
    :param resolution: ``"720p"`` (default, $0.112 per second) or ``"1080p"`` ($0.14 per second).
    :param duration: the video length in whole seconds, 3 to 15 (int or numeric string). Default 5.
    :param model: the GMI model id. Default ``kling-3.0-turbo-i2v``.
    :param kling_conn_id: the ``kling`` connection holding the API key.
    :param wait_for_completion: also wait for the video, and return what
        :class:`~airflow_provider_kling.sensors.kling.KlingStatusSensor` returns.
    :param deferrable: while waiting, free the worker slot and wait in the triggerer.
        Defaults to the ``[operators] default_deferrable`` setting.
    :param poll_interval: seconds between status checks while waiting. Default 10.
    :param timeout: seconds to wait for the video before failing with
        ``AirflowSensorTimeout``. Default 3600.
    :param reuse_previous_request: on a retry of this task, wait for the request an
        earlier try submitted (or return it, if it already succeeded) instead of paying
        for a new one; a failed or cancelled one is submitted anew. Needs Airflow 3.3's
        task state store; on older versions every try submits.
    :param cancel_on_kill: when the task is killed (or marked failed while deferred, on
        Airflow 3.3), ask GMI to cancel the request. GMI documents no cancel call, so this
        is best effort; without it the request keeps running and is billed.
    :return: the request id, or with ``wait_for_completion`` the dict
        ``{"request_id", "status", "media_urls", "outcome"}``.
    """

    template_fields: Sequence[str] = ("first_frame", "prompt", "resolution", "duration", "model")
    operator_extra_links = (KlingVideoLink(),)
    ui_color = "#fbd3b7"

    def __init__(
        self,
        *,
        first_frame: Any,
        prompt: str | None = None,
        resolution: str = "720p",
        duration: int | str = 5,
        model: str = I2V_MODEL,
        kling_conn_id: str = "kling_default",
        wait_for_completion: bool = False,
        deferrable: bool | None = None,
        poll_interval: float = DEFAULT_POKE_INTERVAL,
        timeout: timedelta | float = DEFAULT_TIMEOUT,
        reuse_previous_request: bool = True,
        cancel_on_kill: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self._inline_first_frame: Any = None
        self._request_id: str | None = None
        self.reuse_previous_request = reuse_previous_request
        self.cancel_on_kill = cancel_on_kill
        self.first_frame = self._stash_inline(first_frame)
        self.prompt = prompt
        self.resolution = resolution
        self.duration = duration
        self.model = model
        self.kling_conn_id = kling_conn_id
        self.wait_for_completion = wait_for_completion
        self.deferrable = default_deferrable() if deferrable is None else deferrable
        self.poll_interval = float(poll_interval)
        self.timeout = timeout.total_seconds() if isinstance(timeout, timedelta) else float(timeout)
        if self.poll_interval <= 0 or self.timeout <= 0:
            raise ValueError(
                f"poll_interval and timeout must be positive, got {poll_interval!r} and {timeout!r}"
            )
        # Literal values are checked now, so a typo fails at parse time in the DAG's
        # import errors instead of at run time; templates are checked after rendering.
        for check, value in (
            (validate_prompt, prompt),
            (validate_resolution, resolution),
            (validate_duration, duration),
            (validate_model, model),
        ):
            if not _is_template(value):
                check(value)
        if (
            isinstance(self.first_frame, str)
            and not _is_template(self.first_frame)
            and self._inline_first_frame is None
        ):
            classify_first_frame(self.first_frame)

    def _stash_inline(self, value: Any) -> Any:
        """
        Keep an inline image out of the templated field, which Airflow renders, stores and
        shows in the UI; the field shows a short description instead.
        """
        if not _is_inline_image(value):
            return value
        self._inline_first_frame = value
        return f"<inline image: {len(value):,} {'bytes' if not isinstance(value, str) else 'base64 chars'}>"

    def render_template_fields(self, context: Any, jinja_env: Any = None) -> None:
        super().render_template_fields(context, jinja_env)
        # A template can render to base64 (say, pulled from XCom): stash it before the
        # rendered fields are saved.
        self.first_frame = self._stash_inline(self.first_frame)

    @cached_property
    def hook(self) -> KlingHook:
        from airflow_provider_kling.hooks.kling import KlingHook

        return KlingHook(self.kling_conn_id)

    def build_payload(self) -> tuple[dict[str, Any], str]:
        """Validate every input and build the request payload, with a loggable image description."""
        prompt = validate_prompt(self.prompt)
        resolution = validate_resolution(self.resolution)
        duration = validate_duration(self.duration)
        first_frame = self._inline_first_frame if self._inline_first_frame is not None else self.first_frame
        frame, description = prepare_first_frame(first_frame)
        payload: dict[str, Any] = {"first_frame": frame, "resolution": resolution, "duration": duration}
        if prompt is not None:
            payload["prompt"] = prompt
        return payload, description

    def execute(self, context: Context) -> Any:
        model = validate_model(self.model)
        payload, description = self.build_payload()
        cost = estimate_cost(model, payload)
        store = context.get("task_state_store")
        record = self._earlier_request(store) if self.reuse_previous_request else None
        if record is None:
            record = self._submit(model, payload, store)
            self.log.info(
                "Submitted Kling request %s: model=%s resolution=%s duration=%s s first_frame=%s "
                "estimated cost %s",
                record.request_id,
                model,
                payload["resolution"],
                payload["duration"],
                description,
                f"${cost:.3f}" if cost is not None else "unknown",
            )
        self._request_id = record.request_id
        context["ti"].xcom_push(key="request_id", value=record.request_id)
        if not self.wait_for_completion:
            return record.request_id
        result = result_from_record(record)
        if result is not None:
            return result
        if self.deferrable:
            from airflow_provider_kling.triggers.kling import KlingStatusTrigger

            self.defer(
                trigger=KlingStatusTrigger(
                    request_id=record.request_id,
                    end_time=time.time() + self.timeout,
                    kling_conn_id=self.kling_conn_id,
                    poll_interval=self.poll_interval,
                    cancel_on_kill=self.cancel_on_kill,
                ),
                method_name="execute_complete",
                timeout=timedelta(seconds=self.timeout + 120),
            )
        return self._wait(record.request_id)

    def _submit(self, model: str, payload: dict[str, Any], store: Any) -> KlingRequest:
        try:
            record = self.hook.submit(model, payload)
        except KlingSubmitUnknownError as err:
            # A task retry would submit again and may pay twice: stop here and let a
            # person look (the message lists the requests GMI created meanwhile).
            raise KlingSubmitOutcomeUnknown(str(err)) from err
        if store is not None:
            # Persisted before anything else can fail, so a retry finds this request.
            store.set(STATE_KEY, record.request_id)
        return record

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

    def _wait(self, request_id: str) -> dict[str, Any]:
        deadline = time.monotonic() + self.timeout
        last_status = None
        while True:
            record = self.hook.get_request(request_id)
            if record.status != last_status:
                self.log.info("Kling request %s is %s", request_id, record.status)
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
            time.sleep(min(self.poll_interval, remaining))

    def execute_complete(self, context: Context, event: Any = None) -> dict[str, Any]:
        """Resume after the trigger fired: return the result, or raise what the event says."""
        result = result_from_event(event)
        self.log.info("Kling request %s succeeded: %s", result["request_id"], ", ".join(result["media_urls"]))
        return result
