"""
Per-model payload specs: what each known Kling model takes, checked before the paid submit.

A model not listed here is sent as given; the caller logs that it was not validated.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from airflow_provider_kling.api.errors import KlingValidationError
from airflow_provider_kling.api.images import FirstFrame, classify_first_frame, image_stem, read_first_frame
from airflow_provider_kling.api.validation import (
    I2V_MODEL,
    MAX_DURATION,
    MAX_PROMPT_CHARS,
    MIN_DURATION,
    RESOLUTIONS,
    closest,
    estimate_cost,
    validate_duration,
    validate_model,
    validate_prompt,
    validate_resolution,
)

T2V_MODEL = "kling-3.0-turbo-t2v"
V3_I2V_MODEL = "kling-v3-image-to-video"
ASPECT_RATIOS = ("16:9", "9:16", "1:1")
SOUND_OPTIONS = ("on", "off")

# A check takes the value and the field name; it returns the value to send and, for an
# image, the image as read: its loggable description (the base64 itself must never be
# logged) and its name.
Check = Callable[[Any, str], tuple[Any, FirstFrame | None]]


def _image(value: Any, name: str) -> tuple[Any, FirstFrame | None]:
    frame = read_first_frame(value, field_name=name)
    return frame.data, frame


def _text(value: Any, name: str) -> tuple[Any, FirstFrame | None]:
    try:
        return validate_prompt(value), None
    except KlingValidationError as err:
        # validate_prompt speaks of "prompt"; name the field actually given.
        raise KlingValidationError(name, err.problem, err.allowed) from None


def _resolution(value: Any, name: str) -> tuple[Any, FirstFrame | None]:
    return validate_resolution(value), None


def _duration(value: Any, name: str) -> tuple[Any, FirstFrame | None]:
    return validate_duration(value), None


def _aspect_ratio(value: Any, name: str) -> tuple[Any, FirstFrame | None]:
    if value not in ASPECT_RATIOS:
        allowed = " or ".join(map(repr, ASPECT_RATIOS))
        raise KlingValidationError(
            name,
            f"{value!r} is not supported",
            allowed,
            suggestion=closest(str(value).replace("x", ":").replace("/", ":"), ASPECT_RATIOS),
        )
    return value, None


def _sound(value: Any, name: str) -> tuple[Any, FirstFrame | None]:
    if isinstance(value, bool):
        return ("on" if value else "off"), None
    if isinstance(value, str) and value.strip().lower() in SOUND_OPTIONS:
        return value.strip().lower(), None
    suggestion = closest(value, SOUND_OPTIONS)
    raise KlingValidationError(
        name, f"{value!r} is not supported", "'on', 'off', True or False", suggestion=suggestion
    )


@dataclass(frozen=True)
class FieldRule:
    """
    What a check allows, as data, so it can be compared with GMI's model detail
    (:mod:`~airflow_provider_kling.api.model_detail`); ``None`` where the check states nothing.

    :param options: the values sent, as GMI lists them.
    :param minimum: the lowest number allowed.
    :param maximum: the highest number allowed.
    """

    options: tuple[str, ...] | None = None
    minimum: int | None = None
    maximum: int | None = None


#: Each check's allowed values as data; a check not named here (text, images) states none.
RULES: Mapping[Check, FieldRule] = {
    _resolution: FieldRule(options=RESOLUTIONS),
    _duration: FieldRule(
        options=tuple(str(n) for n in range(MIN_DURATION, MAX_DURATION + 1)),
        minimum=MIN_DURATION,
        maximum=MAX_DURATION,
    ),
    _aspect_ratio: FieldRule(options=ASPECT_RATIOS),
    _sound: FieldRule(options=SOUND_OPTIONS),
}


@dataclass(frozen=True)
class ModelSpec:
    """
    The payload one model takes.

    :param fields: every payload key the model knows, with its check.
    :param required: the keys that must be present (and, for text, not blank).
    :param description: one line for the docs and the logs.
    :param defaults: what GMI's model doc says it uses for a key left out; GMI may fill these
        into a request's payload echo, which a lost submit is then recognised by.
    """

    fields: Mapping[str, Check]
    required: frozenset[str] = field(default_factory=frozenset)
    description: str = ""
    defaults: Mapping[str, Any] = field(default_factory=dict)

    def is_image(self, name: str) -> bool:
        """Whether a field holds an image (read from a file or decoded when checked)."""
        return self.fields.get(name) is _image

    def check_literal(self, name: str, value: Any) -> None:
        """
        The parse-time check of one literal argument, so a typo fails in the DAG's import errors:
        the field's own check, except that an image is only classified (URL, base64, path), since
        a file is read when the task runs, never while the DAG is parsed.

        :raises KlingValidationError: the value could never be sent.
        """
        if value is None:
            return
        if not self.is_image(name):
            self.fields[name](value, name)
        elif isinstance(value, str):
            classify_first_frame(value, field_name=name)

    def rule(self, name: str) -> FieldRule:
        """What the check of field ``name`` allows, as data."""
        return RULES.get(self.fields[name], FieldRule())


MODEL_SPECS: dict[str, ModelSpec] = {
    I2V_MODEL: ModelSpec(
        fields={"first_frame": _image, "prompt": _text, "resolution": _resolution, "duration": _duration},
        required=frozenset({"first_frame"}),
        description="Kling 3.0 Turbo image-to-video",
        defaults={"resolution": "720p", "duration": "5"},
    ),
    T2V_MODEL: ModelSpec(
        fields={
            "prompt": _text,
            "resolution": _resolution,
            "aspect_ratio": _aspect_ratio,
            "duration": _duration,
        },
        required=frozenset({"prompt"}),
        description="Kling 3.0 Turbo text-to-video",
    ),
    V3_I2V_MODEL: ModelSpec(
        fields={
            "prompt": _text,
            "image": _image,
            "image_tail": _image,
            "negative_prompt": _text,
            "duration": _duration,
            "sound": _sound,
        },
        required=frozenset({"prompt", "image"}),
        description="Kling v3 image-to-video (first and optional last frame, sound)",
    ),
}


#: The payload keys that say what video was asked for (for records and asset events).
SUMMARY_KEYS = ("prompt", "duration", "resolution")


@dataclass(frozen=True)
class PreparedPayload:
    """
    A payload ready to submit, and everything later steps say about it, worked out once.

    :param model: the model id, stripped.
    :param payload: what to send; images are URLs or raw base64.
    :param validated: ``False`` when the model has no spec and the payload went unchecked.
    :param images: a loggable description of each image field, by field name.
    :param image: the source image's name without its suffix (``red`` for ``shoes/red.jpg``),
        for ``{image}`` in a video's file name; ``None`` for an inline image or none.
    :param image_source: where that image was read from (URL, path or object), for lineage;
        ``None`` for an inline image or none.

    ``summary`` (prompt, duration and resolution as sent, never an image) and
    ``estimated_cost_usd`` are derived from ``payload`` when the value is made, so the cost
    cap, the records, the result and the asset events all read the same price.
    """

    model: str
    payload: dict[str, Any]
    validated: bool
    images: dict[str, str] = field(default_factory=dict)
    image: str | None = None
    image_source: Any = field(default=None, repr=False)
    summary: dict[str, Any] = field(init=False)
    estimated_cost_usd: float | None = field(init=False)

    def __post_init__(self) -> None:
        summary = {k: self.payload.get(k) for k in SUMMARY_KEYS}
        if summary["duration"] is not None:
            summary["duration"] = str(summary["duration"])
        object.__setattr__(self, "summary", summary)
        object.__setattr__(self, "estimated_cost_usd", estimate_cost(self.model, self.payload))

    def log_line(self) -> str:
        """The payload for a log line: images by description, text and options as they are."""
        shown = {k: self.images.get(k, v) for k, v in self.payload.items()}
        return ", ".join(f"{k}={v!r}" for k, v in shown.items())

    def describe(self) -> str:
        """Deprecated name of :meth:`log_line`."""
        warnings.warn(
            "PreparedPayload.describe() is deprecated; use log_line()", DeprecationWarning, stacklevel=2
        )
        return self.log_line()


def prepare_payload(model: Any, payload: Any, *, spec: ModelSpec | None = None) -> PreparedPayload:
    """
    Check a payload against its model's spec and return what to send.

    Unknown keys are refused (a typo would otherwise be silently ignored by GMI), required
    keys must be present, each value is checked once, and images are read and encoded once,
    after every other field passed (a typo costs no file read). A model without a spec passes
    its payload through unchanged, with ``validated=False``.

    :param model: the GMI model id.
    :param payload: the request payload, a mapping of the model's parameters.
    :param spec: the rules to check it by; default the model's own in ``MODEL_SPECS``.
    :raises KlingValidationError: before anything is sent.
    """
    model = validate_model(model)
    if not isinstance(payload, Mapping):
        raise KlingValidationError(
            "payload", f"expected a mapping, got {type(payload).__name__}", "a dict of the model's parameters"
        )
    spec = spec or MODEL_SPECS.get(model)
    if spec is None:
        # Unchecked, but its image still names the video: the same keys the known models use.
        raw = dict(payload)
        return PreparedPayload(
            model, raw, validated=False, image=image_stem(raw.get("first_frame", raw.get("image")))
        )
    unknown = sorted(str(k) for k in payload if k not in spec.fields)
    if unknown:
        raise KlingValidationError(
            "payload", f"{', '.join(unknown)} is not a parameter of {model}", ", ".join(spec.fields)
        )
    checked: dict[str, Any] = {}
    frames: dict[str, FirstFrame] = {}
    given = [name for name in spec.fields if payload.get(name) is not None]
    for name in sorted(given, key=spec.is_image):  # images last: the only check that reads a file
        value, frame = spec.fields[name](payload[name], name)
        if value is None:  # a blank optional text is left out
            continue
        checked[name] = value
        if frame is not None:
            frames[name] = frame
    for name in sorted(spec.required - checked.keys()):
        if name in payload:  # given as None: the field's own check says what it takes
            spec.fields[name](None, name)
        if name.endswith("prompt"):
            allowed = f"a non-blank prompt up to {MAX_PROMPT_CHARS} characters"
        else:
            allowed = (
                "an image: an http(s) URL, base64, a file path or bytes" if spec.is_image(name) else "a value"
            )
        raise KlingValidationError(name, f"{model} requires it", allowed)
    return PreparedPayload(
        model=model,
        payload={name: checked[name] for name in spec.fields if name in checked},
        validated=True,
        images={name: frame.description for name, frame in frames.items()},
        # The first image (the first frame, not a tail frame) names the video.
        image=next(iter(frames.values())).name if frames else None,
        image_source=next(iter(frames.values())).source if frames else None,
    )


def served_models_report(base_url: str, models: Sequence[str]) -> str:
    """
    What a connection test says on success: where, how many models the key may call, and
    whether the image-to-video model is one of them (a submit for it fails otherwise).
    """
    found = "among them" if I2V_MODEL in models else "NOT among them, so its submits would fail"
    return f"Connected to GMI Cloud at {base_url}: {len(models)} models served, {I2V_MODEL} {found}."
