"""What GMI serves about its models: the ids it lists, each model's detail record, its payload checks.

What a model takes (its fields, which are required, the allowed values, the prompt limit, the price)
is the provider's own declaration in :mod:`airflow_provider_kling.api`, read here, so client and
simulator agree by construction: a model added to ``MODEL_SPECS`` is served and checked. Defined here
is only GMI's side: its other models, its words for each parameter, and how it answers a bad payload
(in its own terms, a 400 or its odd 500, never the provider's messages).
"""

from __future__ import annotations

from collections.abc import Mapping
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
from airflow_provider_kling.api.model_detail import Parameter, parse_parameters
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
#: The keys of one parameter in GMI's detail record; a ``model_drift`` may change any of them.
PARAMETER_KEYS = (
    "display_name",
    "description",
    "type",
    "required",
    "options",
    "default",
    "min_value",
    "max_value",
)
#: The organization GMI's detail records name; the simulator has one.
ORG_ID = "00000000-0000-4000-8000-00000000516d"

#: How GMI's detail is told to differ, by model id: ``None`` for a model GMI no longer serves, else
#: by parameter name ``None`` to drop it, or the keys to change (a key set to ``None`` is left out).
Drift = Mapping[str, Mapping[str, Mapping[str, Any] | None] | None]


def served_models(drift: Drift | None = None) -> tuple[str, ...]:
    """What ``GET /models`` lists: :data:`MODEL_IDS` but the models a drift removed."""
    drift = drift or {}
    return tuple(m for m in MODEL_IDS if not (m in drift and drift[m] is None))


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
        "display_name": None,
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
            "display_name": name.replace("_", " ").capitalize(),
            "required": name in spec.required,
            "default": spec.defaults.get(name, _PARAMETERS[name]["default"]),
        }
        for name in spec.fields
    ]


def model_detail(model_id: str, drift: Drift | None = None) -> dict[str, Any] | None:
    """The ``GET /models/{id}`` answer, or ``None`` for a model not served; ``drift`` changes it."""
    if model_id not in served_models(drift):
        return None
    if model_id not in MODEL_SPECS:
        prompt = {"name": "prompt", **_PARAMETERS["prompt"], "display_name": "Prompt", "required": False}
        brief, parameters = f"Simulated model {model_id}.", [prompt]
    else:
        brief, parameters = MODEL_SPECS[model_id].description, _parameters(model_id)
    detail: dict[str, Any] = {
        "model": model_id,
        "org_id": ORG_ID,
        "brief_description": brief,
        "detailed_description": f"{brief} Served by the local GMI simulator.",
        "modalities": _modalities(parameters),
        "parameters": _drifted(parameters, (drift or {}).get(model_id) or {}),
    }
    rates = PRICES_PER_SECOND.get(model_id)
    if rates:
        # GMI's record gives one price: the lowest, that of the default resolution.
        detail["price_info"] = {"price": min(rates.values()), "pricing_type": "per_second", "unit": "second"}
    return detail


def _modalities(parameters: list[dict[str, Any]]) -> dict[str, list[str]]:
    takes_image = any(p["type"] == "image" for p in parameters)
    return {"input": ["image", "text"] if takes_image else ["text"], "output": ["video"]}


def _drifted(
    parameters: list[dict[str, Any]], changes: Mapping[str, Mapping[str, Any] | None]
) -> list[dict[str, Any]]:
    """The parameters with a model's drift applied: dropped, changed, or added at the end."""
    names = {p["name"] for p in parameters}
    drifted = []
    for parameter in [*parameters, *({"name": n} for n in changes if n not in names)]:
        change = changes.get(parameter["name"], {})
        if change is None:
            continue
        merged = {**parameter, **change}
        drifted.append({k: v for k, v in merged.items() if not (k in change and v is None)})
    return drifted


def validate_payload(model: str, payload: object, drift: Drift | None = None) -> tuple[int, str] | None:
    """Return ``(status, error)`` when the real service would reject this submit, else ``None``.

    The model's detail record is what is checked, as GMI checks against its own: structural
    problems answer 400; a value outside an enum's options answers 500 "Backend error (400)",
    because that is what GMI is reported to do for invalid parameter values. Keys a model does
    not take are let through, as GMI is not known to refuse them. A drifted record is checked as
    drifted, as GMI checks against its own.
    """
    if not isinstance(payload, dict):
        return 400, "payload must be a JSON object"
    if not payload:
        return 400, "payload must not be empty"
    prompt = payload.get("prompt")
    if prompt is not None and (not isinstance(prompt, str) or len(prompt) > MAX_PROMPT_CHARS):
        return 400, f"prompt must be a string of at most {MAX_PROMPT_CHARS} characters"
    detail = model_detail(model, drift)
    if model not in MODEL_SPECS or detail is None:
        return None
    parameters = (parse_parameters(detail["parameters"]) or {}).values()
    for parameter in parameters:
        value = payload.get(parameter.name)
        if parameter.required and (not isinstance(value, str) or not value.strip()):
            return 400, f"{parameter.name} is required"
    for parameter in parameters:
        if parameter.name in payload and not _allowed(payload[parameter.name], parameter):
            return 500, BACKEND_ERROR
    return None


def _allowed(value: Any, parameter: Parameter) -> bool:
    if parameter.options is not None and value not in parameter.options:
        return False
    number = float(value) if isinstance(value, str) and value.strip().isdigit() else None
    low, high = parameter.minimum, parameter.maximum
    return number is None or ((low is None or number >= low) and (high is None or number <= high))
