"""What GMI serves about its models: the ids it lists, each model's detail record, its payload checks.

What a model takes (its fields, which are required, the allowed values, the prompt limit, the price)
is the provider's own declaration in :mod:`airflow_provider_kling.api`, read here, so client and
simulator agree by construction: a model added to ``MODEL_SPECS`` is served and checked. Defined here
is only GMI's side: its other models, its words for each parameter, and how it answers a bad payload
(in its own terms, a 400 or its odd 500, never the provider's messages).
"""

from __future__ import annotations

from typing import Any

from airflow_provider_kling.api import (
    ASPECT_RATIOS,
    MAX_DURATION,
    MAX_PROMPT_CHARS,
    MIN_DURATION,
    MODEL_SPECS,
    PRICES_PER_SECOND,
    RESOLUTIONS,
)
from airflow_provider_kling.api.models import SOUND_OPTIONS
from airflow_provider_kling.testing.wire import BACKEND_ERROR

#: Models GMI serves that the provider has no spec for. The real list has hundreds of ids; a few
#: non-Kling ones keep clients honest.
OTHER_MODELS: tuple[str, ...] = (
    "kling-v2-5-turbo",
    "kling-v2-6",
    "seedream-5.0-lite",
    "veo3-fast",
    "wan2.2-i2v-a14b",
    "minimax-hailuo-02",
    "deepseek-ai/DeepSeek-V3.1",
)

#: What ``GET /models`` lists: every model the provider has a spec for, then the others.
MODEL_IDS: tuple[str, ...] = (*MODEL_SPECS, *OTHER_MODELS)


def _param(
    type_: str,
    description: str,
    *,
    options: tuple[str, ...] | None = None,
    default: str | None = None,
    min_value: int | None = None,
    max_value: int | None = None,
) -> dict[str, Any]:
    return {
        "type": type_,
        "description": description,
        "options": list(options) if options is not None else None,
        "default": default,
        "min_value": min_value,
        "max_value": max_value,
    }


# GMI's record of each parameter a spec'd model takes, by name. A default here is one the
# provider's specs do not state; a spec's ``defaults`` win.
_PARAMETERS: dict[str, dict[str, Any]] = {
    "first_frame": _param("image", "The starting frame image (Base64 string or URL)."),
    "image": _param("image", "The source image (Base64 string or URL)."),
    "image_tail": _param("image", "Optional last frame."),
    "prompt": _param("string", f"Describe the motion and action (up to {MAX_PROMPT_CHARS} chars)."),
    "negative_prompt": _param("string", "What to avoid."),
    "resolution": _param(
        "enum", f"Output resolution: {' or '.join(map(repr, RESOLUTIONS))}.", options=RESOLUTIONS
    ),
    "duration": _param(
        "enum",
        f"Total duration in seconds ({MIN_DURATION}-{MAX_DURATION}).",
        # GMI's enum is of strings: an int duration is refused, so clients are caught sending one.
        options=tuple(str(n) for n in range(MIN_DURATION, MAX_DURATION + 1)),
        min_value=MIN_DURATION,
        max_value=MAX_DURATION,
    ),
    "aspect_ratio": _param("enum", "Output aspect ratio.", options=ASPECT_RATIOS, default="16:9"),
    "sound": _param("enum", "Generate sound.", options=SOUND_OPTIONS, default="off"),
}


def _parameters(model_id: str) -> list[dict[str, Any]]:
    spec = MODEL_SPECS[model_id]
    return [
        {
            "name": name,
            **_PARAMETERS[name],
            "required": name in spec.required,
            "default": spec.defaults.get(name, _PARAMETERS[name]["default"]),
        }
        for name in spec.fields
    ]


def model_detail(model_id: str) -> dict[str, Any] | None:
    """The ``GET /models/{id}`` answer, or ``None`` for an unknown model."""
    if model_id not in MODEL_IDS:
        return None
    if model_id not in MODEL_SPECS:
        prompt = {"name": "prompt", **_PARAMETERS["prompt"], "required": False}
        brief = f"Simulated model {model_id}."
        return {"model": model_id, "brief_description": brief, "parameters": [prompt]}
    detail: dict[str, Any] = {
        "model": model_id,
        "brief_description": MODEL_SPECS[model_id].description,
        "parameters": _parameters(model_id),
    }
    rates = PRICES_PER_SECOND.get(model_id)
    if rates:
        # GMI's record gives one price: the lowest, that of the default resolution.
        detail["price_info"] = {"price": min(rates.values()), "pricing_type": "per_second", "unit": "second"}
    return detail


def validate_payload(model: str, payload: object) -> tuple[int, str] | None:
    """Return ``(status, error)`` when the real service would reject this submit, else ``None``.

    The model's detail record is what is checked, as GMI checks against its own: structural
    problems answer 400; a value outside an enum's options answers 500 "Backend error (400)",
    because that is what GMI is reported to do for invalid parameter values. Keys a model does
    not take are let through, as GMI is not known to refuse them.
    """
    if not isinstance(payload, dict):
        return 400, "payload must be a JSON object"
    if not payload:
        return 400, "payload must not be empty"
    prompt = payload.get("prompt")
    if prompt is not None and (not isinstance(prompt, str) or len(prompt) > MAX_PROMPT_CHARS):
        return 400, f"prompt must be a string of at most {MAX_PROMPT_CHARS} characters"
    if model not in MODEL_SPECS:
        return None
    parameters = _parameters(model)
    for parameter in parameters:
        value = payload.get(parameter["name"])
        if parameter["required"] and (not isinstance(value, str) or not value.strip()):
            return 400, f"{parameter['name']} is required"
    for parameter in parameters:
        options = parameter["options"]
        if options is not None and parameter["name"] in payload and payload[parameter["name"]] not in options:
            return 500, BACKEND_ERROR
    return None
