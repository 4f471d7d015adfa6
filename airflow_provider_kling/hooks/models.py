"""GMI's model detail read through a :class:`~airflow_provider_kling.hooks.kling.KlingHook`, and
compared with the provider's spec (:mod:`airflow_provider_kling.api.model_detail`)."""

from __future__ import annotations

import dataclasses
from collections.abc import Collection
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from airflow_provider_kling.api import MODEL_SPECS, KlingAPIError, KlingValidationError, validate_model
from airflow_provider_kling.api.model_detail import ModelCheck, check_detail, known_models_report
from airflow_provider_kling.api.redaction import redacted_errors
from airflow_provider_kling.transport.bounds import send
from airflow_provider_kling.transport.errors import parse_answer

if TYPE_CHECKING:
    from airflow_provider_kling.hooks.kling import KlingHook

#: Seconds a quick check (a task's, the connection test's) may take in all, connecting included:
#: it only informs, so it must never hold up what it informs.
QUICK_TIMEOUT = 5.0


def check_model(hook: KlingHook, model_id: str, *, quick: bool = False) -> ModelCheck:
    """
    Compare the provider's spec of ``model_id`` with GMI's detail record of it.

    GMI's answer never raises: a 404 is a model not served, any other failure is the check's
    ``error``. ``quick`` asks once, within :data:`QUICK_TIMEOUT`; otherwise the hook's retry
    policy and the connection's timeout apply, as to any read.

    :raises KlingValidationError: the model has no spec in this provider, or the connection is bad.
    """
    model = validate_model(model_id)
    if model not in MODEL_SPECS:
        raise KlingValidationError("model", f"{model} has no spec in this provider", ", ".join(MODEL_SPECS))
    path, what = f"/models/{quote(model, safe='')}", f"get model {model}"
    try:
        detail = _get_once(hook, path, what) if quick else hook._call("GET", path, idempotent=True, what=what)
    except KlingAPIError as err:
        if err.status_code == 404:
            return ModelCheck(model, served=False)
        return ModelCheck(model, error=str(err))
    return check_detail(model, detail)


def known_models(hook: KlingHook, served: Collection[str]) -> str:
    """The connection test's words on each model with a spec: one quick detail read per served one."""
    return known_models_report({m: _quick_check(hook, m) if m in served else None for m in MODEL_SPECS})


def _quick_check(hook: KlingHook, model: str) -> ModelCheck:
    try:
        return check_model(hook, model, quick=True)
    except Exception as err:  # the key works: a check that fails for any reason is said, not a failed test
        return ModelCheck(model, error=str(err))


def _get_once(hook: KlingHook, path: str, what: str) -> dict[str, Any]:
    # The hook's own call, once and within QUICK_TIMEOUT: no retry policy, the same bounded read.
    settings = dataclasses.replace(hook.settings, timeout=min(QUICK_TIMEOUT, hook.settings.timeout))
    with redacted_errors(settings.secrets):
        answer = send(hook.session, "GET", path, None, None, settings, QUICK_TIMEOUT, what)
        return parse_answer(*answer, what=what, secrets=settings.secrets)


__all__ = ["QUICK_TIMEOUT", "ModelCheck", "check_model", "known_models"]
