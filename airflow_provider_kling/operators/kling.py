"""The operator that turns an image into a video with Kling 3.0 Turbo."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow_provider_kling.api import (
    I2V_MODEL,
    PreparedPayload,
    classify_first_frame,
    image_stem,
    prepare_first_frame,
    validate_duration,
    validate_model,
    validate_prompt,
    validate_resolution,
)
from airflow_provider_kling.operators.submit import KlingSubmitOperator, is_template
from airflow_provider_kling.submission import STATE_KEY

if TYPE_CHECKING:
    from airflow.sdk import Context


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

    Every other argument is :class:`~airflow_provider_kling.operators.submit.KlingSubmitOperator`'s
    and means the same here: ``kling_conn_id``, ``max_cost_usd``, ``wait_for_completion``,
    ``deferrable``, ``poll_interval``, ``timeout``, ``max_poll_failures``,
    ``durable``, ``reuse_succeeded``, ``cancel_on_kill``, ``download_to``, ``download_filename``,
    ``download_conn_id`` and ``max_download_bytes``.

    :return: the request id, or with ``wait_for_completion`` the dict
        ``{"request_id", "status", "media_urls", "outcome", "estimated_cost_usd"}`` (and
        ``files`` with ``download_to``).
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
    inline_image_fields = ("first_frame",)

    def __init__(
        self,
        *,
        first_frame: Any,
        prompt: str | None = None,
        resolution: str = "720p",
        duration: int | str = 5,
        model: str = I2V_MODEL,
        **kwargs: Any,
    ) -> None:
        # Set before the parent's __init__, which hides an inline first_frame.
        self.first_frame = first_frame
        self.prompt = prompt
        self.resolution = resolution
        self.duration = duration
        super().__init__(model=model, **kwargs)
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
        if isinstance(self.first_frame, str) and not is_template(self.first_frame) and not self._inline:
            classify_first_frame(self.first_frame)

    def build_payload(self) -> tuple[dict[str, Any], str]:
        """Validate every input and build the request payload, with a loggable image description."""
        prompt = validate_prompt(self.prompt)
        resolution = validate_resolution(self.resolution)
        duration = validate_duration(self.duration)
        frame, description = prepare_first_frame(self.field_value("first_frame"))
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

    def source_image(self, context: Context, request_id: str) -> str | None:
        """The name of ``first_frame`` (``red`` for ``shoes/red.jpg``); ``None`` for an inline image."""
        return image_stem(self.field_value("first_frame"))

    def summary(self) -> dict[str, Any]:
        """Prompt, duration and resolution, for asset events; never the image."""
        return {
            "prompt": validate_prompt(self.prompt),
            "duration": validate_duration(self.duration),
            "resolution": validate_resolution(self.resolution),
        }

    def lineage_image(self) -> Any:
        """``first_frame`` as given, for lineage."""
        return self.field_value("first_frame")


__all__ = ["STATE_KEY", "KlingI2VOperator", "KlingSubmitOperator"]
