"""
GMI Cloud request-queue API: types, validation and response parsing.

This package knows nothing of Airflow, so the hooks, the operators, the trigger and the
simulator's users all share one definition of what a valid request and a valid answer are.
It exports what users and the other layers need (model ids, limits, prices, statuses, records,
validators, the polling schedule); the helpers behind them stay in their submodules.
"""

from __future__ import annotations

from airflow_provider_kling.api.connection import (
    API_PREFIX,
    DEFAULT_BASE_URL,
    ConnectionSettings,
    connection_settings,
)
from airflow_provider_kling.api.dimensions import MAX_ASPECT_RATIO, MIN_IMAGE_SIDE
from airflow_provider_kling.api.errors import KlingAPIError, KlingError, KlingValidationError
from airflow_provider_kling.api.images import (
    MAX_IMAGE_BYTES,
    classify_first_frame,
    image_stem,
    prepare_first_frame,
)
from airflow_provider_kling.api.models import (
    ASPECT_RATIOS,
    MODEL_SPECS,
    T2V_MODEL,
    V3_I2V_MODEL,
    ModelSpec,
    PreparedPayload,
    prepare_payload,
)
from airflow_provider_kling.api.polling import DEFAULT_SCHEDULE, PollSchedule
from airflow_provider_kling.api.records import (
    FAILED_STATUSES,
    GMI_STATUSES,
    RUNNING_STATUSES,
    SUCCESS_STATUS,
    TERMINAL_STATUSES,
    KlingRequest,
    Verdict,
)
from airflow_provider_kling.api.validation import (
    I2V_MODEL,
    MAX_DURATION,
    MAX_PROMPT_CHARS,
    MIN_DURATION,
    PRICES_PER_SECOND,
    RESOLUTIONS,
    estimate_cost,
    validate_byte_cap,
    validate_duration,
    validate_model,
    validate_number,
    validate_poll_failures,
    validate_prompt,
    validate_request_id,
    validate_resolution,
    validate_seconds,
    validate_usd,
    validate_whole,
)

__all__ = [
    "API_PREFIX",
    "ASPECT_RATIOS",
    "DEFAULT_BASE_URL",
    "DEFAULT_SCHEDULE",
    "FAILED_STATUSES",
    "GMI_STATUSES",
    "I2V_MODEL",
    "MAX_ASPECT_RATIO",
    "MAX_DURATION",
    "MAX_IMAGE_BYTES",
    "MAX_PROMPT_CHARS",
    "MIN_DURATION",
    "MIN_IMAGE_SIDE",
    "MODEL_SPECS",
    "PRICES_PER_SECOND",
    "RESOLUTIONS",
    "RUNNING_STATUSES",
    "SUCCESS_STATUS",
    "T2V_MODEL",
    "TERMINAL_STATUSES",
    "V3_I2V_MODEL",
    "ConnectionSettings",
    "KlingAPIError",
    "KlingError",
    "KlingRequest",
    "KlingValidationError",
    "ModelSpec",
    "PollSchedule",
    "PreparedPayload",
    "Verdict",
    "classify_first_frame",
    "connection_settings",
    "estimate_cost",
    "image_stem",
    "prepare_first_frame",
    "prepare_payload",
    "validate_byte_cap",
    "validate_duration",
    "validate_model",
    "validate_number",
    "validate_poll_failures",
    "validate_prompt",
    "validate_request_id",
    "validate_resolution",
    "validate_seconds",
    "validate_usd",
    "validate_whole",
]
