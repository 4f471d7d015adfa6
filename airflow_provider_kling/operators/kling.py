"""The operator that turns an image into a video with Kling 3.0 Turbo."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from airflow_provider_kling.api import I2V_MODEL, MODEL_SPECS, ModelSpec, validate_model
from airflow_provider_kling.operators.submit import KlingSubmitOperator, is_template
from airflow_provider_kling.tasks.submit_once import STATE_KEY

# The model's own rules, with the resolution and duration this operator always sends (its
# arguments default to them): a template rendering to None there is a mistake, not GMI's default.
_I2V_ARGUMENTS = MODEL_SPECS[I2V_MODEL]
_I2V_ARGUMENTS = replace(_I2V_ARGUMENTS, required=_I2V_ARGUMENTS.required | {"resolution", "duration"})


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
    ``download_conn_id`` and ``download_max_bytes``.

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
        # Literal values are checked now, by the spec's own per-field checks, so a typo fails at
        # parse time in the DAG's import errors; templates are checked after rendering.
        if not is_template(model):
            validate_model(model)
        spec = self.payload_spec()
        for name, value in self.arguments().items():
            if not is_template(value) and (name, None) not in self._inline:
                spec.check_literal(name, value)

    def arguments(self) -> dict[str, Any]:
        """The payload fields as the task holds them (an inline image still hidden)."""
        return {
            "first_frame": self.first_frame,
            "prompt": self.prompt,
            "resolution": self.resolution,
            "duration": self.duration,
        }

    def payload_spec(self) -> ModelSpec:
        """
        The turbo image-to-video spec, whatever ``model`` says: it is the payload this
        operator builds, so its rules are the ones to check (also for a newer model id).
        """
        return _I2V_ARGUMENTS

    def build_payload(self) -> dict[str, Any]:
        """The payload of the arguments, inline image put back; the spec checks it."""
        return {**self.arguments(), "first_frame": self.field_value("first_frame")}


__all__ = ["STATE_KEY", "KlingI2VOperator", "KlingSubmitOperator"]
