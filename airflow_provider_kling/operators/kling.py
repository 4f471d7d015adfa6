"""The operator that turns an image into a video with Kling 3.0 Turbo."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from airflow_provider_kling.api import (
    I2V_MODEL,
    PreparedPayload,
    classify_first_frame,
    prepare_first_frame,
    validate_duration,
    validate_model,
    validate_prompt,
    validate_resolution,
)
from airflow_provider_kling.operators.submit import (
    STATE_KEY,
    KlingSubmitOperator,
    is_inline_image,
    is_template,
)
from airflow_provider_kling.outputs import DEFAULT_MAX_BYTES
from airflow_provider_kling.sensors.kling import DEFAULT_TIMEOUT


class KlingI2VOperator(KlingSubmitOperator):
    """
    Submit an image-to-video request to Kling on GMI Cloud, and optionally wait for the video.

    Every input is checked before the request is sent, so a bad value costs nothing and
    the error names the argument to fix. The request id is pushed to XCom (as the
    return value and under the key ``request_id``) as soon as GMI accepts the request.

    :param first_frame: the image to animate (templated when a path or URL): an http(s)
        URL (sent as is), base64 text or a ``data:image/...;base64,`` URI, a local file
        path, ``bytes``, or an ``ObjectStoragePath`` (``s3://``, ``gs://``, ...). Files
        are read when the task runs, never while the DAG is parsed, and must be JPEG or
        PNG (checked by content) up to 10 MB, each side at least 300 px, with an aspect
        ratio between 1:2.5 and 2.5:1 (a URL cannot be checked: GMI fetches it). Inline
        images are kept out of the rendered fields, logs and XCom; only their size and a
        hash are shown.
    :param prompt: the motion to create, up to 2,500 characters (templated). Optional.
    :param resolution: ``"720p"`` (default, $0.112 per second) or ``"1080p"`` ($0.14 per second).
    :param duration: the video length in whole seconds, 3 to 15 (int or numeric string). Default 5.
    :param model: the GMI model id. Default ``kling-3.0-turbo-i2v``.
    :param kling_conn_id: the ``kling`` connection holding the API key.
    :param wait_for_completion: also wait for the video, and return what
        :class:`~airflow_provider_kling.sensors.kling.KlingStatusSensor` returns.
    :param deferrable: while waiting, free the worker slot and wait in the triggerer.
        Defaults to the ``[operators] default_deferrable`` setting.
    :param poll_interval: seconds between status checks while waiting. By default the wait
        follows :data:`~airflow_provider_kling.api.polling.DEFAULT_SCHEDULE`: first check 25 s
        after the submit, then about every 9.5 s, slowing down after 10 minutes.
    :param timeout: seconds to wait for the video before failing with
        ``AirflowSensorTimeout``. Default 3600.
    :param reuse_previous_request: on a retry of this task, wait for the request an
        earlier try submitted (or return it, if it already succeeded) instead of paying
        for a new one; a failed or cancelled one is submitted anew. Needs Airflow 3.3's
        task state store; on older versions every try submits.
    :param cancel_on_kill: when the task is killed (or marked failed while deferred, on
        Airflow 3.3), ask GMI to cancel the request. GMI documents no cancel call, so this
        is best effort; without it the request keeps running and is billed.
    :param max_cost_usd: refuse, before submitting, a request whose estimated price
        (duration x the resolution's rate) is higher. The estimate is logged and pushed
        to XCom as ``estimated_cost_usd``.
    :param download_to: with ``wait_for_completion``, also stream the video to this folder
        (a local path, a URI such as ``s3://bucket/videos`` or an ``ObjectStoragePath``);
        see :class:`~airflow_provider_kling.operators.submit.KlingSubmitOperator`.
    :param download_filename: the file name under ``download_to``. Default
        ``{{ run_id }}/{request_id}_{index}.mp4``.
    :param download_conn_id: the Airflow connection of the object store, if it needs one.
    :param max_download_bytes: refuse a larger video. Default 2 GiB.
    :return: the request id, or with ``wait_for_completion`` the dict
        ``{"request_id", "status", "media_urls", "outcome"}``.
    """

    template_fields: Sequence[str] = (
        "first_frame",
        "prompt",
        "resolution",
        "duration",
        "model",
        "download_to",
        "download_filename",
    )

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
        poll_interval: float | None = None,
        timeout: timedelta | float = DEFAULT_TIMEOUT,
        reuse_previous_request: bool = True,
        cancel_on_kill: bool = False,
        max_cost_usd: float | None = None,
        download_to: Any = None,
        download_filename: str | None = None,
        download_conn_id: str | None = None,
        max_download_bytes: int | None = DEFAULT_MAX_BYTES,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            model=model,
            kling_conn_id=kling_conn_id,
            max_cost_usd=max_cost_usd,
            wait_for_completion=wait_for_completion,
            deferrable=deferrable,
            poll_interval=poll_interval,
            timeout=timeout,
            reuse_previous_request=reuse_previous_request,
            cancel_on_kill=cancel_on_kill,
            download_to=download_to,
            download_filename=download_filename,
            download_conn_id=download_conn_id,
            max_download_bytes=max_download_bytes,
            **kwargs,
        )
        self._inline_first_frame: Any = None
        self.first_frame = self._stash_inline(first_frame)
        self.prompt = prompt
        self.resolution = resolution
        self.duration = duration
        # Literal values are checked now, so a typo fails at parse time in the DAG's
        # import errors instead of at run time; templates are checked after rendering.
        for check, value in (
            (validate_prompt, prompt),
            (validate_resolution, resolution),
            (validate_duration, duration),
            (validate_model, model),
        ):
            if not is_template(value):
                check(value)
        if (
            isinstance(self.first_frame, str)
            and not is_template(self.first_frame)
            and self._inline_first_frame is None
        ):
            classify_first_frame(self.first_frame)

    def _stash_inline(self, value: Any) -> Any:
        """
        Keep an inline image out of the templated field, which Airflow renders, stores and
        shows in the UI; the field shows a short description instead.
        """
        if not is_inline_image(value):
            return value
        self._inline_first_frame = value
        return f"<inline image: {len(value):,} {'bytes' if not isinstance(value, str) else 'base64 chars'}>"

    def render_template_fields(self, context: Any, jinja_env: Any = None) -> None:
        super().render_template_fields(context, jinja_env)
        # A template can render to base64 (say, pulled from XCom): stash it before the
        # rendered fields are saved.
        self.first_frame = self._stash_inline(self.first_frame)

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

    def prepare(self) -> PreparedPayload:
        """The checked payload, with the image described for the log."""
        model = validate_model(self.model)
        payload, description = self.build_payload()
        return PreparedPayload(
            model=model, payload=payload, validated=True, images={"first_frame": description}
        )

    def summary(self) -> dict[str, Any]:
        """Model, prompt, duration and resolution, for asset events; never the image."""
        return {
            "model": self.model,
            "prompt": validate_prompt(self.prompt),
            "duration": validate_duration(self.duration),
            "resolution": validate_resolution(self.resolution),
        }


__all__ = ["STATE_KEY", "KlingI2VOperator", "KlingSubmitOperator"]
