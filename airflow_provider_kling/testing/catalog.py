"""The simulator's model catalog and the payload checks the real service is known (or likely) to make."""

from __future__ import annotations

from typing import Any

I2V_MODEL = "kling-3.0-turbo-i2v"
T2V_MODEL = "kling-3.0-turbo-t2v"

#: What ``GET /models`` lists. The real list has hundreds of ids; a few non-Kling ones keep clients honest.
MODEL_IDS: tuple[str, ...] = (
    I2V_MODEL,
    T2V_MODEL,
    "kling-v3-image-to-video",
    "kling-v2-5-turbo",
    "kling-v2-6",
    "seedream-5.0-lite",
    "veo3-fast",
    "wan2.2-i2v-a14b",
    "minimax-hailuo-02",
    "deepseek-ai/DeepSeek-V3.1",
)

RESOLUTIONS = ("720p", "1080p")
DURATIONS = tuple(str(n) for n in range(3, 16))
ASPECT_RATIOS = ("16:9", "9:16", "1:1")
MAX_PROMPT_CHARS = 2500
BACKEND_ERROR = "Backend error (400). Please try again."


def _param(
    name: str,
    type_: str,
    required: bool,
    description: str,
    *,
    options: tuple[str, ...] | None = None,
    default: str | None = None,
    min_value: int | None = None,
    max_value: int | None = None,
) -> dict[str, Any]:
    return {
        "name": name,
        "type": type_,
        "required": required,
        "description": description,
        "options": list(options) if options is not None else None,
        "default": default,
        "min_value": min_value,
        "max_value": max_value,
    }


_PROMPT = _param("prompt", "string", False, "Describe the motion and action (up to 2500 chars).")
_RESOLUTION = _param(
    "resolution", "enum", False, "Output resolution: '720p' or '1080p'.", options=RESOLUTIONS, default="720p"
)
_DURATION = _param(
    "duration", "enum", False, "Total duration in seconds (3-15).", options=DURATIONS, default="5",
    min_value=3, max_value=15,
)  # fmt: skip
_PRICE = {"price": 0.112, "pricing_type": "per_second", "unit": "second"}

_DETAILS: dict[str, dict[str, Any]] = {
    I2V_MODEL: {
        "brief_description": "Kling v3.0 Turbo image-to-video: animates a single source image.",
        "parameters": [
            _param("first_frame", "image", True, "The starting frame image (Base64 string or URL)."),
            _PROMPT,
            _RESOLUTION,
            _DURATION,
        ],
        "price_info": _PRICE,
    },
    T2V_MODEL: {
        "brief_description": "Kling v3.0 Turbo text-to-video.",
        "parameters": [
            {**_PROMPT, "required": True},
            _RESOLUTION,
            _param(
                "aspect_ratio", "enum", False, "Output aspect ratio.", options=ASPECT_RATIOS, default="16:9"
            ),
            _DURATION,
        ],
        "price_info": _PRICE,
    },
    "kling-v3-image-to-video": {
        "brief_description": "Kling v3 image-to-video.",
        "parameters": [
            {**_PROMPT, "required": True},
            _param("image", "image", True, "The source image (Base64 string or URL)."),
            _param("image_tail", "image", False, "Optional last frame."),
            _param("negative_prompt", "string", False, "What to avoid."),
            _DURATION,
            _param("sound", "enum", False, "Generate sound.", options=("on", "off"), default="off"),
        ],
    },
}


def model_detail(model_id: str) -> dict[str, Any] | None:
    """The ``GET /models/{id}`` answer, or ``None`` for an unknown model."""
    if model_id not in MODEL_IDS:
        return None
    detail = _DETAILS.get(
        model_id, {"brief_description": f"Simulated model {model_id}.", "parameters": [_PROMPT]}
    )
    return {"model": model_id, **detail}


def validate_payload(model: str, payload: object) -> tuple[int, str] | None:
    """Return ``(status, error)`` when the real service would reject this submit, else ``None``.

    Structural problems answer 400; bad enum values answer 500 "Backend error (400)" because that is
    what GMI is reported to do for invalid parameter values.
    """
    if not isinstance(payload, dict):
        return 400, "payload must be a JSON object"
    if not payload:
        return 400, "payload must not be empty"
    prompt = payload.get("prompt")
    if prompt is not None and (not isinstance(prompt, str) or len(prompt) > MAX_PROMPT_CHARS):
        return 400, f"prompt must be a string of at most {MAX_PROMPT_CHARS} characters"
    if model == I2V_MODEL:
        return _require(payload, "first_frame") or _check_enums(payload, aspect_ratio=False)
    if model == T2V_MODEL:
        return _require(payload, "prompt") or _check_enums(payload, aspect_ratio=True)
    if model == "kling-v3-image-to-video":
        return _require(payload, "prompt") or _require(payload, "image")
    return None


def _require(payload: dict[str, Any], key: str) -> tuple[int, str] | None:
    value = payload.get(key)
    if not isinstance(value, str) or not value.strip():
        return 400, f"{key} is required"
    return None


def _check_enums(payload: dict[str, Any], *, aspect_ratio: bool) -> tuple[int, str] | None:
    # The documented enums are strings; an int duration is rejected so clients are caught sending one.
    if "resolution" in payload and payload["resolution"] not in RESOLUTIONS:
        return 500, BACKEND_ERROR
    if "duration" in payload and payload["duration"] not in DURATIONS:
        return 500, BACKEND_ERROR
    if aspect_ratio and "aspect_ratio" in payload and payload["aspect_ratio"] not in ASPECT_RATIOS:
        return 500, BACKEND_ERROR
    return None
